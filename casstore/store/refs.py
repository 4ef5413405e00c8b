"""Named refs (tags): a name under ``refs/tags/`` holding one digest, and resolving
what a user typed (a digest, a prefix, a tag) to a digest."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from casstore.errors import CasError, IntegrityError, InvalidDigest, InvalidRefName, ObjectNotFound
from casstore.format import layout
from casstore.format.digest import (
    HEX_LENGTH,
    PREFIX,
    is_hex,
    looks_like_digest,
    parse_digest,
    parse_prefix,
)

if TYPE_CHECKING:
    from casstore.store.objects import Store

MAX_LENGTH = 200
# No '/', so a name can never leave refs/tags/; no leading '.', so no '..' or hidden files.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+=-]*")


def validate_ref_name(name: str) -> str:
    """Return ``name`` if it is a valid tag name, else raise :class:`InvalidRefName`."""
    if not name or len(name) > MAX_LENGTH or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidRefName(
            f"invalid tag name {name!r}: use letters, digits and . _ @ + = -, "
            f"starting with a letter, digit or _, no '..', at most {MAX_LENGTH} characters"
        )
    return name


def resolve(store: Store, spec: str) -> str:
    """The digest that ``spec`` names: a digest, a unique prefix (>= 8 hex) or a tag."""
    if not looks_like_digest(spec):
        try:
            validate_ref_name(spec)
        except CasError:
            raise InvalidDigest(
                f"{spec!r} is neither a digest (blake3:<64 hex>), "
                "a prefix of at least 8 hex characters, nor a tag name"
            ) from None
        try:
            return tag_target(store, spec)
        except ObjectNotFound:
            if is_hex(spec):
                parse_prefix(spec)  # a short hex string: say it is too short, not "no tag"
            raise
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


def tag(store: Store, name: str, digest: str) -> None:
    """Point tag ``name`` at ``digest`` (which must be in the store)."""
    from casstore.store.trash import trashed

    validate_ref_name(name)
    digest = parse_digest(digest)
    # An object in gc's trash counts: tagging it is what makes gc restore it.
    if not store.has(digest) and not trashed(store.backend, [digest]):
        raise ObjectNotFound(digest, f"cannot tag {name}: not found: {digest}")
    store.require_writable()
    store.backend.write_bytes(layout.tag_key(name), (digest + "\n").encode())


def untag(store: Store, name: str) -> None:
    validate_ref_name(name)
    try:
        store.backend.delete(layout.tag_key(name))
    except ObjectNotFound:
        raise ObjectNotFound(name, f"no tag named {name}") from None


def tag_target(store: Store, name: str) -> str:
    validate_ref_name(name)
    try:
        raw = store.backend.read_bytes(layout.tag_key(name))
    except ObjectNotFound:
        raise ObjectNotFound(name, f"no tag named {name}") from None
    try:
        return parse_digest(raw.decode("ascii"))
    except (UnicodeDecodeError, InvalidDigest):
        raise IntegrityError(f"tag {name} is corrupt: it holds no digest") from None


def tags(store: Store) -> dict[str, str]:
    """Every tag and the digest it names, sorted by name."""
    prefix = len(layout.TAGS) + 1
    names = sorted(key[prefix:] for key in store.backend.list(layout.TAGS))
    return {name: tag_target(store, name) for name in names}
