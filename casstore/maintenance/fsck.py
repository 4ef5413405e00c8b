"""Check a whole store: re-hash every object (or a random sample), move corrupt ones to
``quarantine/`` instead of deleting them, and report references to missing objects."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from casstore.errors import ObjectNotFound
from casstore.format import layout
from casstore.format.records import references
from casstore.store.repack import read_pack, rewrite_packs
from casstore.store.reread import reread

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


def _decoded(data: bytes) -> Any:
    """A record's references are checked; content that only looks like one has none."""
    import msgspec

    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None


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
    # Stored sizes too: chunk lists, small, are read first (see reread).
    loose = {
        digest: info.size
        for info in store.backend.list_detailed(layout.OBJECTS)
        if (digest := layout.digest_of_key(info.key)) is not None
    }
    everything = sorted(loose.keys() | store.packs.digests())
    result.total = len(everything)
    chosen = everything
    if sample_percent < 100:
        count = min(len(everything), math.ceil(len(everything) * sample_percent / 100))
        chosen = sorted(random.Random(seed).sample(everything, count))
    if on_plan is not None:
        on_plan(len(chosen))

    records: dict[str, Any] = {}
    found = reread(store, chosen, jobs=jobs, sizes=loose, on_object=on_object)
    for digest in chosen:
        checked = found[digest]
        result.checked += 1
        result.checked_bytes += checked.size
        if checked.problem is not None:
            result.corrupt[digest] = checked.problem
        elif checked.missing_chunk is not None:
            # No problem of its own: a reference to a missing object, reported as such.
            records[digest] = {"chunks": [checked.missing_chunk]}
        elif checked.record is not None and (record := _decoded(checked.record)) is not None:
            records[digest] = record
    if quarantine and result.corrupt:
        _quarantine(store, sorted(result.corrupt), result)
    refs = {digest: list(dict.fromkeys(references(record))) for digest, record in records.items()}
    # Listed loose objects not found corrupt are there (a request each saved).
    listed = loose.keys() - result.corrupt.keys()
    absent = set(store.missing({r for rs in refs.values() for r in rs} - listed))
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
