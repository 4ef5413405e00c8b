"""Garbage collection from named roots, with a grace period and a trash; no locks on data.

Roots are the refs under ``refs/`` (tags, recorded runs and gradings). An
object is reachable when a root's closure holds it (through run manifests,
grading records and trees, chunks included).

One run of :func:`collect` (one at a time: :mod:`casstore.maintenance.lease`):

1. lists every loose object, pack and trash entry, with its time;
2. then reads the roots and marks what is reachable;
3. restores reachable objects found in the trash (unless stored live again);
4. deletes trash entries of batches sealed longer ago than the grace period
   that are still unreachable (an unsealed batch, left by a gc that died, is
   sealed now and waits its turn);
5. moves unreachable objects older than the grace period to a new trash batch,
   rewrites old packs that hold unreachable objects (live ones to a new pack,
   dead ones to the batch, then the old packs' index entries and the packs go),
   and seals the batch once all of that is done.

Why a writer never loses an object. The trash is visible: every read, ``has``
and prefix finds an object there until gc deletes or restores it. The write
path alone never relies on it: a writer stores an object again unless it is
stored live (loose, or packed in a pack that exists: an index entry alone may
outlive its pack, see ``IndexSet.present``). So a writer that found an object
live at time t (and did not store it) tags a record referencing it before
t + grace (the contract: runs take less than the grace period). If gc moved
the object to the trash after t, the batch is sealed after the move, and its
entries are deleted only by a gc that starts more than the grace period after
the seal, so after the tag exists; that gc reads the roots after it starts,
finds the object reachable, and restores it. Objects stored during a gc are
younger than the grace period and never candidates.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from casstore.errors import InvalidDigest, ObjectNotFound
from casstore.format import layout, objects
from casstore.format.digest import parse_digest
from casstore.graph.closure import walk
from casstore.graph.describe import kinds_of
from casstore.maintenance.lease import Lease
from casstore.store.compact import drop_packs
from casstore.store.repack import PackContents, read_pack, rewrite_packs

if TYPE_CHECKING:
    from casstore.backends.base import KeyInfo
    from casstore.store.objects import Store

DEFAULT_GRACE = 24 * 3600.0


@dataclass
class GcItem:
    """One object gc moves to the trash, deletes from it, or restores."""

    action: str
    digest: str
    kind: str
    size: int
    age: float


@dataclass
class GcResult:
    dry_run: bool
    grace: float
    roots: int = 0
    reachable: int = 0
    restored: int = 0
    trashed: int = 0
    trashed_bytes: int = 0
    #: Trash entries deleted for good: the bytes freed.
    deleted: int = 0
    deleted_bytes: int = 0
    packs_rewritten: int = 0
    #: Unreachable, but younger than the grace period: kept.
    young: int = 0
    #: Packs holding a block that does not verify: left for fsck.
    skipped_packs: list[str] = field(default_factory=list)
    #: With ``dry_run``: every object that would be trashed, deleted or restored.
    items: list[GcItem] = field(default_factory=list)
    #: Temp files (or incomplete uploads) of writers that died, older than the grace
    #: period: removed, with their bytes.
    leftovers: int = 0
    leftover_bytes: int = 0

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def roots(store: Store) -> dict[str, str]:
    """Every ref under ``refs/`` (tags, runs, gradings) -> its digest."""
    found = {}
    for key in store.backend.list(layout.REFS):
        try:
            found[key] = parse_digest(store.backend.read_bytes(key).decode("ascii").strip())
        except (ObjectNotFound, InvalidDigest, UnicodeDecodeError):
            continue  # removed while listing, or not a ref
    return found


@dataclass
class _Listing:
    loose: dict[str, KeyInfo]
    packs: dict[str, KeyInfo]
    #: digest -> its trash entries; batch -> its seal (None: not sealed).
    trash: dict[str, list[KeyInfo]]
    seals: dict[str, KeyInfo | None]


def _list(store: Store) -> _Listing:
    backend = store.backend
    loose = {
        d: info
        for info in backend.list_detailed(layout.OBJECTS)
        if (d := layout.digest_of_key(info.key)) is not None
    }
    packs = {
        p: info
        for info in backend.list_detailed(layout.PACKS)
        if (p := layout.pack_of_key(info.key)) is not None
    }
    trash: dict[str, list[KeyInfo]] = {}
    seals: dict[str, KeyInfo | None] = {}
    for info in backend.list_detailed(layout.TRASH):
        batch = layout.trash_batch_of_key(info.key)
        if batch is None:
            continue
        if info.key == layout.trash_seal_key(batch):
            seals[batch] = info
        elif (digest := layout.trashed_digest(info.key)) is not None:
            trash.setdefault(digest, []).append(info)
            seals.setdefault(batch, None)
    store.packs.refresh()
    return _Listing(loose, packs, trash, seals)


def collect(
    store: Store,
    *,
    grace: float = DEFAULT_GRACE,
    dry_run: bool = False,
    log: Callable[[str], None] | None = None,
) -> GcResult:
    """Run one garbage collection (see the module's docstring). Another gc running on the
    store makes this one refuse (``LeaseHeld``); a dry run needs no lease."""
    if dry_run:
        return _collect(store, grace, dry_run, log, None)
    store.require_writable("gc")
    lease = Lease(store)
    lease.acquire()
    try:
        return _collect(store, grace, dry_run, log, lease)
    finally:
        lease.release()


def _collect(
    store: Store,
    grace: float,
    dry_run: bool,
    log: Callable[[str], None] | None,
    lease: Lease | None,
) -> GcResult:
    result = GcResult(dry_run, grace)
    start = time.time()
    cutoff = start - grace
    backend = store.backend
    # 0. What killed writers left: a writer alive touched its temp files within the
    # grace period (the same contract as for the objects it stores).
    leftovers = backend.leftovers(cutoff)
    result.leftovers = len(leftovers)
    result.leftover_bytes = sum(info.size for info in leftovers)
    if not dry_run:
        backend.remove_leftovers(leftovers)
    listing = _list(store)  # 1. before the roots: see the argument above

    # 2. Mark. Trashed records are read from the trash, so their references count.
    named = roots(store)
    result.roots = len(named)
    reachable: set[str] = set()
    for digest in dict.fromkeys(named.values()):
        try:
            closure = walk(store, [digest])
        except ObjectNotFound:
            continue
        reachable.update(closure.order)
        reachable.update(closure.missing)
    result.reachable = len(reachable)
    plan: list[tuple[str, str, int, float]] = []
    if lease is not None:
        lease.renew()

    # 3. Restore what is reachable but trashed.
    for digest in sorted(reachable & listing.trash.keys()):
        entries = [info.key for info in listing.trash[digest]]
        if not store.stored(digest):
            result.restored += 1
            plan.append(("restore", digest, listing.trash[digest][0].size, 0.0))
            if not dry_run:
                backend.move(entries.pop(), layout.object_key(digest))
        if not dry_run:
            backend.delete_many(entries)  # copies of an object that is live again

    # 4. Empty the trash of what stayed there, unreachable, for the grace period.
    unsealed = [b for b, seal in listing.seals.items() if seal is None]
    if unsealed and not dry_run:
        backend.create_many([(layout.trash_seal_key(b), b"") for b in unsealed])
    expired_batches = {
        b for b, seal in listing.seals.items() if seal is not None and seal.mtime < cutoff
    }
    expired = [
        (digest, info)
        for digest, infos in listing.trash.items()
        if digest not in reachable
        for info in infos
        if layout.trash_batch_of_key(info.key) in expired_batches
    ]
    result.deleted = len(expired)
    result.deleted_bytes = sum(info.size for _, info in expired)
    plan += [("delete", d, info.size, start - info.mtime) for d, info in expired]
    if not dry_run:
        # A batch left with nothing (deleted now, or restored above) loses its seal too.
        going = {info.key for _, info in expired}
        remaining = {
            layout.trash_batch_of_key(info.key)
            for digest, infos in listing.trash.items()
            if digest not in reachable
            for info in infos
            if info.key not in going
        }
        emptied = [b for b in listing.seals if b not in remaining]
        backend.delete_many(
            [info.key for _, info in expired] + [layout.trash_seal_key(b) for b in emptied]
        )

    # 5. Move old unreachable objects to a new trash batch, then seal it.
    batch = f"{int(start)}-{secrets.token_hex(4)}"
    for digest, info in listing.loose.items():
        if digest in reachable:
            continue
        if info.mtime >= cutoff:
            result.young += 1
            continue
        result.trashed += 1
        result.trashed_bytes += info.size
        plan.append(("trash", digest, info.size, start - info.mtime))
        if not dry_run:
            try:
                backend.move(info.key, layout.trash_key(batch, info.key))
            except ObjectNotFound:
                result.trashed -= 1  # gone since the listing
    plan += _repack(store, listing, reachable, cutoff, batch, result, log)
    if not dry_run and result.trashed:
        backend.create_many([(layout.trash_seal_key(batch), b"")])
    if dry_run:
        kinds = kinds_of(store, [digest for _, digest, _, _ in plan])
        result.items = [
            GcItem(action, digest, kinds.get(digest, "blob"), size, round(age, 1))
            for action, digest, size, age in plan
        ]
    store.packs.refresh()
    return result


def _repack(
    store: Store,
    listing: _Listing,
    reachable: set[str],
    cutoff: float,
    batch: str,
    result: GcResult,
    log: Callable[[str], None] | None,
) -> list[tuple[str, str, int, float]]:
    """Rewrite old packs that hold unreachable objects; dead ones go to the trash."""
    by_pack: dict[str, set[str]] = {}
    for digest, where in store.packs.entries():
        by_pack.setdefault(where.pack, set()).add(digest)
    # Entries of packs that no longer exist (a merge that raced an earlier gc): dropped.
    unknown = [p for p in by_pack if p not in listing.packs]
    stale = [
        p
        for p, here in zip(
            unknown, store.backend.exists_many([layout.pack_key(p) for p in unknown]), strict=True
        )
        if not here
    ]
    plan: list[tuple[str, str, int, float]] = []
    reads: list[PackContents] = []
    for pack, members in sorted(by_pack.items()):
        dead = sorted(d for d in members if d not in reachable)
        info = listing.packs.get(pack)
        if not dead or info is None:
            continue
        if info.mtime >= cutoff:
            result.young += len(dead)
            continue
        read = read_pack(store, pack, sorted(members))
        if read.damaged:  # any damage: the pack is left to fsck
            result.skipped_packs.append(pack)
            if log is not None:
                log(f"pack {pack} does not verify: left in place (run cas fsck)")
            continue
        result.packs_rewritten += 1
        result.trashed += len(dead)
        result.trashed_bytes += sum(len(read.contents[d]) for d in dead)
        age = time.time() - info.mtime
        plan += [("trash", d, len(read.contents[d]), age) for d in dead]
        reads.append(read)
    if result.dry_run:
        return plan
    for read in reads:
        for digest in read.contents.keys() - reachable:
            content = read.contents[digest]
            stored = objects.pack_header(objects.RAW, len(content)) + content
            store.backend.write_bytes(layout.trash_key(batch, layout.object_key(digest)), stored)
    if reads:
        rewrite_packs(store, reads, lambda digest: digest in reachable)
    drop_packs(store, stale)
    return plan
