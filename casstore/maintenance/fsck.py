"""Check a whole store: re-hash every object (or a random sample), move corrupt ones to
``quarantine/`` instead of deleting them, and report references to missing objects."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from casstore.errors import ChunkMissing, IntegrityError, ObjectNotFound
from casstore.format import layout
from casstore.format.records import HEAD_BYTES, MAX_RECORD_BYTES, record_kind, references
from casstore.store.repack import read_pack, rewrite_packs

if TYPE_CHECKING:
    from casstore.store.objects import Store

#: Temp files older than this are reported: no writer takes a day between two writes to
#: one (gc, whose grace period says the same, removes them).
LEFTOVER_AGE = 24 * 3600


@dataclass
class FsckResult:
    total: int = 0
    checked: int = 0
    checked_bytes: int = 0
    #: Corrupt digest -> what is wrong.
    corrupt: dict[str, str] = field(default_factory=dict)
    #: Keys moved to the quarantine (objects, or whole packs).
    quarantined: list[str] = field(default_factory=list)
    #: Record digest -> the digests it references that are not in the store.
    missing: dict[str, list[str]] = field(default_factory=dict)
    #: Refs (tags, runs, gradings) naming an object the store does not hold.
    broken_refs: dict[str, str] = field(default_factory=dict)
    #: Temp files of writers that died, untouched for a day: key, size, age in seconds.
    leftovers: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _check(store: Store, digest: str) -> tuple[int, str | None, Any]:
    """(size, problem or None, decoded record or None) of one object, read in full.

    A chunked object whose chunk is missing is no problem of its own: its record is
    ``{"chunks": [missing chunk]}``, reported with the missing references."""
    import msgspec

    try:
        with store.open_stored(digest) as reader:  # never the cache
            head = reader.read(HEAD_BYTES)
            if record_kind(head) is not None and reader.size <= MAX_RECORD_BYTES:
                data = head + reader.read()
                try:
                    return reader.size, None, msgspec.json.decode(data)
                except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                    return reader.size, None, None
            buffer = bytearray(1 << 20)
            while reader.readinto(buffer):
                pass
            return reader.size, None, None
    except ChunkMissing as exc:
        return 0, None, {"chunks": [exc.chunk]}
    except IntegrityError as exc:
        return 0, str(exc), None
    except ObjectNotFound:
        return 0, None, None  # removed (by gc) since the listing


def fsck(
    store: Store,
    *,
    sample_percent: float = 100.0,
    jobs: int = 8,
    quarantine: bool = True,
    seed: int | None = None,
    on_plan: Callable[[int], None] | None = None,
    on_object: Callable[[], None] | None = None,
) -> FsckResult:
    """Check the store; see the module's docstring."""
    result = FsckResult()
    store.packs.refresh()
    everything = sorted(store.loose_digests() | store.packs.digests())
    result.total = len(everything)
    chosen = everything
    if sample_percent < 100:
        count = min(len(everything), math.ceil(len(everything) * sample_percent / 100))
        chosen = sorted(random.Random(seed).sample(everything, count))
    if on_plan is not None:
        on_plan(len(chosen))

    def one(digest: str) -> tuple[int, str | None, Any]:
        try:
            return _check(store, digest)
        finally:
            if on_object is not None:
                on_object()

    def group_of(digests: list[str]) -> list[tuple[int, str | None, Any]]:
        return [one(digest) for digest in digests]

    groups = store.packs.by_block(chosen)
    records: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for group, outcomes in zip(groups, pool.map(group_of, groups), strict=True):
            for digest, (size, problem, record) in zip(group, outcomes, strict=True):
                result.checked += 1
                result.checked_bytes += size
                if problem is not None:
                    result.corrupt[digest] = problem
                elif record is not None:
                    records[digest] = record
    if quarantine and result.corrupt:
        _quarantine(store, sorted(result.corrupt), result)
    refs = {digest: list(dict.fromkeys(references(record))) for digest, record in records.items()}
    absent = set(store.missing({r for rs in refs.values() for r in rs}))
    for digest, referenced in refs.items():
        missing = [r for r in referenced if r in absent]
        if missing:
            result.missing[digest] = missing
    named = store.refs()
    gone = set(store.missing(set(named.values())))
    result.broken_refs = {ref: digest for ref, digest in named.items() if digest in gone}
    now = time.time()
    result.leftovers = [
        {"key": info.key, "size": info.size, "age": now - info.mtime}
        for info in store.backend.leftovers(now - LEFTOVER_AGE)
    ]
    return result


def _quarantine(store: Store, corrupt: list[str], result: FsckResult) -> None:
    """Move corrupt loose objects, and packs holding corrupt objects, to the quarantine.

    The good objects of such a pack are written to a new pack first.
    """
    backend = store.backend
    damaged_packs: set[str] = set()
    for digest in corrupt:
        where = store.packs.get(digest)
        if where is not None:
            damaged_packs.add(where.pack)
            continue
        key = layout.object_key(digest)
        try:
            backend.move(key, layout.quarantine_key(key))
            result.quarantined.append(layout.quarantine_key(key))
        except ObjectNotFound:
            pass
    members: dict[str, list[str]] = {pack: [] for pack in damaged_packs}
    for digest, where in store.packs.entries():
        if where.pack in members:
            members[where.pack].append(digest)
    reads = [read_pack(store, pack, sorted(set(found))) for pack, found in members.items()]
    if reads:
        result.quarantined += rewrite_packs(store, reads, lambda _digest: True, quarantine=True)
    store.packs.refresh()
