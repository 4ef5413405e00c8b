"""The closure of a digest: the object and everything it references, recursively.

Records (trees, run manifests, grading records) are canonical JSON objects
whose first key is ``"casstore"`` (``docs/FORMAT.md``). Every JSON string in a
record that is a full digest is a reference. Entries of a tree record are file
contents, never records themselves, so they are not opened while walking.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from casstore.errors import IntegrityError, ObjectNotFound
from casstore.format.digest import parse_digest
from casstore.format.records import (
    HEAD_BYTES,
    MAX_RECORD_BYTES,
    is_tree_kind,
    record_kind,
    references,
)
from casstore.store.batch import CHUNKED_MIN
from casstore.store.trash import trashed

if TYPE_CHECKING:
    from casstore.store.objects import Store


@dataclass
class Closure:
    """Objects reachable from the roots, records after everything they reference."""

    #: Digests in an order where each record comes after its references.
    order: list[str] = field(default_factory=list)
    #: Digest -> kind, for the objects that are records.
    kinds: dict[str, str] = field(default_factory=dict)
    #: Referenced but absent from the store: digest -> the record that references it.
    missing: dict[str, str] = field(default_factory=dict)

    def require_complete(self, where: str) -> None:
        """Raise ObjectNotFound naming the first missing object, if any."""
        if self.missing:
            digest, parent = next(iter(self.missing.items()))
            more = f" and {len(self.missing) - 1} more" if len(self.missing) > 1 else ""
            raise ObjectNotFound(
                digest,
                f"{digest} (referenced by {parent}){more} is missing from {where}: "
                "the closure is incomplete",
            )


def kind_of_stored(store: Store, digest: str) -> str | None:
    """The record kind of a stored object (None for a plain blob), from its first bytes."""
    with store.open(digest) as reader:
        return record_kind(reader.read(HEAD_BYTES)) if reader.size <= MAX_RECORD_BYTES else None


def _read_record(store: Store, digest: str) -> tuple[str | None, Any, list[str]]:
    """(kind, decoded record, chunks): a plain object has no kind; a chunked one, chunks."""
    with store.open(digest) as reader:
        chunks = [d for d, _ in reader.chunks or []]
        if reader.size > MAX_RECORD_BYTES:
            return None, None, chunks
        head = reader.read(HEAD_BYTES)
        kind = record_kind(head)
        if kind is None:
            return None, None, chunks
        # Bounded before reading: a record's references must be read to walk it, and
        # one too large is an error (gc then stops), never a blob skipped.
        store.tree_limits.check_size(reader.size, digest)
        data = head + reader.read()
    import msgspec

    try:
        record = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise IntegrityError(f"{digest}: a {kind} record that is not valid JSON") from exc
    if is_tree_kind(kind) and isinstance(record, dict):
        store.tree_limits.check_entries(len(record.get("entries") or ()), digest)
    return kind, record, []


def walk(store: Store, roots: Iterable[str]) -> Closure:
    """Walk the closure of ``roots`` in ``store``. A missing root raises ObjectNotFound."""
    result = Closure()
    seen: set[str] = set()
    # Tree entries are file contents: they are listed, not opened.
    leaf_parent: dict[str, str] = {}
    # Objects stored as chunks: their chunks belong to the closure too.
    chunked: dict[str, list[str]] = {}
    large_leaves: set[str] = set()
    for root in roots:
        # Iterative post-order: a record is appended after all its references.
        stack: list[tuple[str, str | None, bool]] = [(parse_digest(root), None, False)]
        while stack:
            digest, parent, expanded = stack.pop()
            if expanded:
                result.order.append(digest)
                continue
            if digest in seen:
                continue
            seen.add(digest)
            if digest in leaf_parent:
                result.order.append(digest)
                continue
            try:
                kind, record, chunks = _read_record(store, digest)
            except ObjectNotFound:
                if parent is None:
                    raise
                result.missing[digest] = parent
                continue
            if kind is None:
                if chunks:
                    chunked[digest] = chunks
                result.order.append(digest)
                continue
            result.kinds[digest] = kind
            refs = [d for d in dict.fromkeys(references(record)) if d not in seen]
            if is_tree_kind(kind):
                for ref in refs:
                    leaf_parent.setdefault(ref, digest)
                large_leaves.update(_large_files(record))
            stack.append((digest, parent, True))
            stack.extend((ref, digest, False) for ref in reversed(refs))
    # Leaves were not opened: one batched presence check finds the absent ones. Those
    # gc moved to its trash are still readable there (and the next gc restores them).
    absent = set(store.missing([d for d in result.order if d in leaf_parent]))
    absent -= trashed(store.backend, absent).keys()
    if absent:
        result.order = [d for d in result.order if d not in absent]
        for digest in absent:
            result.missing[digest] = leaf_parent[digest]
    # Only files this large may be stored as chunks: one header read each.
    for digest in large_leaves - absent - chunked.keys():
        if digest in leaf_parent:
            found = store.chunk_list(digest)
            if found:
                chunked[digest] = [d for d, _ in found]
    if chunked:
        _add_chunks(store, result, chunked, seen)
    return result


def _large_files(record: Any) -> set[str]:
    entries = record.get("entries") if isinstance(record, dict) else None
    return {
        e["digest"]
        for e in entries or []
        if isinstance(e, dict)
        and isinstance(e.get("size"), int)
        and e["size"] >= CHUNKED_MIN
        and isinstance(e.get("digest"), str)
    }


def _add_chunks(
    store: Store, result: Closure, chunked: dict[str, list[str]], seen: set[str]
) -> None:
    """Put each chunked object's chunks just before it in the order."""
    every = list(dict.fromkeys(c for chunks in chunked.values() for c in chunks if c not in seen))
    absent = set(store.missing(every))
    absent -= trashed(store.backend, absent).keys()
    order = []
    for digest in result.order:
        for chunk in chunked.get(digest, []):
            if chunk in seen:
                continue
            seen.add(chunk)
            if chunk in absent:
                result.missing[chunk] = digest
            else:
                order.append(chunk)
        order.append(digest)
    result.order = order
