"""Refs: names under ``refs/`` holding one digest, and what a user types, resolved.

A ref is ``<kind>/<name>``: ``tags/<name>`` (``cas tag``), ``runs/<trajectory id>``,
``gradings/<id>`` and ``suites/<name>`` (created when a run, a grading or a suite is
recorded). Names may
have namespaces (``team-a/law/run7``). Refs are gc's roots, and they never move
silently: moving one to another target takes ``force``; recording claims a new
name (``t1``, then ``t1-2``...) instead of overwriting.

What a user types resolves in this order (``docs/FORMAT.md`` section 2):

1. ``blake3:<64 hex>`` or 64 hex characters: that digest;
2. 8 to 63 hex characters: the one object whose digest starts with them (a
   ref name is never 8 hex characters or more, so a prefix is never mistaken
   for a name);
3. ``tags/X``, ``runs/X``, ``gradings/X``, ``suites/X``: that ref;
4. any other ``X``: ``tags/X``, else ``runs/X``, else ``gradings/X``, else ``suites/X``.
"""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING, cast

from casstore.errors import (
    IntegrityError,
    InvalidDigest,
    InvalidRefName,
    ObjectNotFound,
    RefExists,
)
from casstore.format import layout
from casstore.format.digest import (
    HEX_LENGTH,
    MIN_PREFIX_LENGTH,
    PREFIX,
    looks_like_digest,
    parse_digest,
    parse_prefix,
)

if TYPE_CHECKING:
    from casstore.store.objects import Store

KINDS = ("tags", "runs", "gradings", "suites")
MAX_LENGTH = 200
# Each part: no leading '.', so no '..' or hidden files; '/' separates namespaces.
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+=-]*")
_HEX = re.compile(r"[0-9a-fA-F]+")


def validate_ref_name(name: str, what: str = "ref") -> str:
    """Return ``name`` if it can name a ref (below its kind), else InvalidRefName."""
    parts = name.split("/")
    if (
        not name
        or len(name) > MAX_LENGTH
        or ".." in name
        or not all(_PART.fullmatch(part) for part in parts)
    ):
        raise InvalidRefName(
            f"invalid {what} name {name!r}: use letters, digits and . _ @ + = -, parts separated "
            f"by '/', each starting with a letter, digit or _, no '..', at most {MAX_LENGTH} "
            "characters"
        )
    if _HEX.fullmatch(name) and len(name) >= MIN_PREFIX_LENGTH:
        raise InvalidRefName(
            f"invalid {what} name {name!r}: hex digits alone would read as a digest prefix; "
            "add a letter or a dash (for example 'tag-" + name + "')"
        )
    return name


def named_ref(kind: str, name: str) -> str:
    """The ref ``kind/name`` for a name a user gave (a tag, ``--ref``, a suite's name):
    refused, never silently renamed, unless valid; it may not start with a kind
    (``runs/...``), which would read as that kind's ref."""
    what = kind.removesuffix("s")
    if name.split("/")[0] in KINDS:
        raise InvalidRefName(
            f"invalid {what} name {name!r}: {name.split('/')[0]}/ is a kind of ref"
        )
    return f"{kind}/{validate_ref_name(name, what)}"


def tag_ref(name: str) -> str:
    """The ref of tag ``name``."""
    return named_ref("tags", name)


def split_ref(ref: str) -> tuple[str, str]:
    """(kind, name) of a full ref such as ``tags/baseline``; InvalidRefName otherwise."""
    kind, _, name = ref.partition("/")
    if kind not in KINDS:
        raise InvalidRefName(
            f"invalid ref {ref!r}: refs are {', '.join(k + '/NAME' for k in KINDS)}"
        )
    return kind, validate_ref_name(name)


def _read(store: Store, ref: str) -> str:
    try:
        raw = store.backend.read_bytes(layout.ref_key(ref))
    except ObjectNotFound:
        raise ObjectNotFound(ref, f"no ref named {ref}") from None
    try:
        return parse_digest(raw.decode("ascii"))
    except (UnicodeDecodeError, InvalidDigest):
        raise IntegrityError(f"ref {ref} is corrupt: it holds no digest") from None


def target(store: Store, ref: str) -> str:
    """The digest a full ref (``tags/x``, ``runs/t1``...) names."""
    split_ref(ref)
    return _read(store, ref)


def resolve(store: Store, spec: str) -> str:
    """The digest ``spec`` names (see the module's docstring for the order)."""
    return resolve_ref(store, spec)[0]


def resolve_ref(store: Store, spec: str) -> tuple[str, str | None]:
    """The digest ``spec`` names, and the ref it was found through (None for a digest
    or a prefix)."""
    if looks_like_digest(spec):
        return _prefix(store, spec), None
    kind, _, rest = spec.partition("/")
    candidates = [spec] if kind in KINDS and rest else [f"{k}/{spec}" for k in KINDS]
    for ref in candidates:
        try:
            return target(store, ref), ref
        except ObjectNotFound:
            continue
        except InvalidRefName:
            raise InvalidDigest(
                f"{spec!r} is neither a digest (blake3:<64 hex>), a prefix of at least 8 hex "
                "characters, nor a ref name"
            ) from None
    if _HEX.fullmatch(spec):
        parse_prefix(spec)  # a short hex string: say it is too short, not "no ref"
    raise ObjectNotFound(spec, f"no ref named {spec} (looked in {', '.join(candidates)})")


def _prefix(store: Store, spec: str) -> str:
    hexpart = parse_prefix(spec)
    if len(hexpart) == HEX_LENGTH:
        return PREFIX + hexpart
    backend = store.backend
    # Loose, packed, and in gc's trash: what every read finds, a prefix finds.
    found = {layout.digest_of_key(k) for k in backend.list(layout.prefix_dir(hexpart))}
    found |= store.packs.with_prefix(hexpart)
    found |= {layout.trashed_digest(k) for k in backend.list(layout.TRASH)}
    matches = sorted(d for d in found if d and d[len(PREFIX) :].startswith(hexpart))
    if not matches:
        raise ObjectNotFound(spec, f"no object matches prefix {hexpart}")
    if len(matches) > 1:
        raise InvalidDigest(f"prefix {hexpart} is ambiguous: {len(matches)} objects match")
    return matches[0]


def _check_free(store: Store, ref: str) -> None:
    """A ref can be a name or a namespace, not both (``a`` and ``a/b``), as in git."""
    parts = ref.split("/")
    for depth in range(2, len(parts)):
        parent = "/".join(parts[:depth])
        if store.backend.exists(layout.ref_key(parent)):
            raise RefExists(f"cannot create {ref}: {parent} is a ref, not a namespace")
    if next(iter(store.backend.list(layout.ref_key(ref))), None) is not None:
        raise RefExists(f"cannot create {ref}: it is a namespace holding other refs")


def set_ref(store: Store, ref: str, digest: str, *, force: bool = False) -> bool:
    """Point ``ref`` at ``digest``. An existing ref with another target is refused unless
    ``force``; returns False when it already named ``digest``."""
    split_ref(ref)
    digest = parse_digest(digest)
    if not store.has(digest):
        raise ObjectNotFound(digest, f"cannot set {ref}: not found: {digest}")
    store.require_writable(f"set {ref}")
    data = (digest + "\n").encode()
    key = layout.ref_key(ref)
    _check_free(store, ref)
    if force:
        store.backend.write_bytes(key, data)
        return True
    if store.backend.create_many([(key, data)])[0]:
        return True
    current = _read(store, ref)
    if current == digest:
        return False
    raise RefExists(
        f"{ref} names {current}: refusing to move it to {digest} (pass --force to move it)"
    )


def claim_ref(
    store: Store, kind: str, name: str, digest: str, *, supersedes: str | None = None
) -> str:
    """A new ref ``kind/name`` for ``digest``, never overwriting: ``name-2``, ``name-3``...
    when the name is taken by another target. Returns the ref.

    One exception: a ref naming ``supersedes`` moves to ``digest``. An orchestrator
    completing the run its runner recorded passes the runner's manifest, which the
    completed run holds in its closure, so the move loses nothing and ``runs/<id>``
    names the whole run.
    """
    base = safe_name(name)
    for n in range(1, 10_000):
        ref = f"{kind}/{base}" if n == 1 else f"{kind}/{base}-{n}"
        try:
            set_ref(store, ref, digest)
        except RefExists:
            if supersedes is None or _read(store, ref) != supersedes:
                continue
            set_ref(store, ref, digest, force=True)
        return ref
    raise RefExists(f"{kind}/{base}: no free name left")


def safe_name(text: str) -> str:
    """``text`` made a valid ref name: other characters become dashes."""
    parts = [re.sub(r"[^A-Za-z0-9._@+=-]+", "-", p) for p in text.split("/")]
    parts = [re.sub(r"^[^A-Za-z0-9_]+", "", p).replace("..", ".") for p in parts]
    name = "/".join(p for p in parts if p)[: MAX_LENGTH - 8].rstrip("/") or "unnamed"
    return f"id-{name}" if _HEX.fullmatch(name) and len(name) >= MIN_PREFIX_LENGTH else name


def delete_ref(store: Store, ref: str) -> None:
    split_ref(ref)
    store.require_writable(f"delete {ref}")
    try:
        store.backend.delete(layout.ref_key(ref))
    except ObjectNotFound:
        raise ObjectNotFound(ref, f"no ref named {ref}") from None


def refs(store: Store, pattern: str | None = None, kind: str | None = None) -> dict[str, str]:
    """Every ref (``kind/name``) and the digest it names, sorted; ``pattern`` is a glob
    over the full ref or its name (``runs/*``, ``team-a/*``)."""
    found = {}
    for key in store.backend.list(layout.ref_key(kind) if kind else layout.REFS):
        ref = key[len(layout.REFS) + 1 :]
        ref_kind, _, name = ref.partition("/")
        if ref_kind not in KINDS:
            continue
        if pattern and not (
            fnmatch.fnmatchcase(ref, pattern) or fnmatch.fnmatchcase(name, pattern)
        ):
            continue
        try:
            found[ref] = _read(store, ref)
        except ObjectNotFound:
            continue  # deleted while listing
    return dict(sorted(found.items()))


def _store(names: Names) -> Store:
    return cast("Store", names)


class Names:
    """The naming half of :class:`~casstore.store.objects.Store`: the methods below call
    this module's functions with the store."""

    def resolve(self, spec: str) -> str:
        """The digest ``spec`` names: a digest, a unique prefix (>= 8 hex) or a ref."""
        return resolve(_store(self), spec)

    def tag(self, name: str, digest: str, *, force: bool = False) -> None:
        """Point tag ``name`` at ``digest`` (which must be readable). A tag naming another
        object is moved only with ``force``."""
        set_ref(_store(self), tag_ref(name), digest, force=force)

    def untag(self, name: str) -> None:
        delete_ref(_store(self), f"tags/{name}")

    def tag_target(self, name: str) -> str:
        return target(_store(self), f"tags/{name}")

    def tags(self, pattern: str | None = None) -> dict[str, str]:
        """Every tag and the digest it names, sorted by name (``pattern``: a glob)."""
        found = refs(_store(self), pattern, kind="tags")
        return {ref.partition("/")[2]: digest for ref, digest in found.items()}

    def refs(self, pattern: str | None = None) -> dict[str, str]:
        """Every ref (``tags/x``, ``runs/t1``, ``gradings/g1``) and its digest."""
        return refs(_store(self), pattern)

    def claim_ref(self, kind: str, name: str, digest: str, *, supersedes: str | None = None) -> str:
        """A new ref ``kind/name`` (``name-2``... when taken) for ``digest``; returns it."""
        return claim_ref(_store(self), kind, name, digest, supersedes=supersedes)
