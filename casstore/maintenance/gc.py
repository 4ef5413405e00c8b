"""Garbage collection from named roots, with a grace period and a trash; no locks.

Roots are the refs under ``refs/`` (tags). An object is reachable when a root's
closure holds it (through run manifests, grading records and trees).

One run of :func:`collect`:

1. lists every loose object, pack and trash entry, with its time;
2. then reads the roots and marks what is reachable;
3. restores reachable objects found in the trash;
4. deletes trash entries that have been there longer than the grace period;
5. moves unreachable objects older than the grace period to the trash, and
   rewrites old packs that hold unreachable objects (live ones go to a new
   pack, dead ones to the trash).

Why a writer never loses an object: a writer that finds an object present
(and so does not store it) and then tags a record referencing it does so
within the grace period. If gc moved that object to the trash meanwhile, the
trash entry is only deleted by a gc that starts more than the grace period
after the move, so after the tag exists; that gc reads the roots after it
starts, finds the object reachable, and restores it. Until then a read that
misses finds the object in the trash (``Store.open``). Objects stored during
a gc are younger than the grace period and never candidates.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from casstore.errors import ObjectNotFound
from casstore.format import layout, objects
from casstore.graph.closure import walk
from casstore.store.repack import read_pack, rewrite_pack

if TYPE_CHECKING:
    from casstore.backends.base import KeyInfo
    from casstore.store.objects import Store

DEFAULT_GRACE = 24 * 3600.0


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

    def as_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def roots(store: Store) -> dict[str, str]:
    """Every ref under ``refs/`` (tags, and any other kind of pin) -> its digest."""
    from casstore.errors import InvalidDigest
    from casstore.format.digest import parse_digest

    found = {}
    for key in store.backend.list(layout.REFS):
        try:
            found[key] = parse_digest(store.backend.read_bytes(key).decode("ascii").strip())
        except (ObjectNotFound, InvalidDigest, UnicodeDecodeError):
            continue  # removed while listing, or not a ref
    return found


def collect(
    store: Store,
    *,
    grace: float = DEFAULT_GRACE,
    dry_run: bool = False,
    log: Callable[[str], None] | None = None,
) -> GcResult:
    """Run one garbage collection (see the module's docstring)."""
    if not dry_run:
        store.require_writable()
    result = GcResult(dry_run, grace)
    start = time.time()
    cutoff = start - grace
    backend = store.backend
    # 1. Listings come before the roots are read: see the safety argument above.
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
    for info in backend.list_detailed(layout.TRASH):
        digest = layout.trashed_digest(info.key)
        if digest is not None:
            trash.setdefault(digest, []).append(info)
    store.packs.refresh()

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

    # 3. Restore what is reachable but trashed.
    for digest in sorted(reachable & trash.keys()):
        entries = [info.key for info in trash[digest]]
        key = layout.object_key(digest)
        if digest not in store.packs and not backend.exists(key):
            result.restored += 1
            if dry_run:
                continue
            backend.move(entries.pop(), key)
        if not dry_run:
            # Copies of an object that is in place again: only checked just now, so
            # run one gc at a time.
            backend.delete_many(entries)

    # 4. Empty the trash of what stayed there, unreachable, for the grace period.
    expired = [
        info
        for digest, infos in trash.items()
        if digest not in reachable
        for info in infos
        if info.mtime < cutoff
    ]
    result.deleted = len(expired)
    result.deleted_bytes = sum(info.size for info in expired)
    if expired and not dry_run:
        backend.delete_many([info.key for info in expired])

    # 5. Move old unreachable objects to the trash.
    batch = f"{int(start)}-{secrets.token_hex(4)}"
    for digest, info in loose.items():
        if digest in reachable:
            continue
        if info.mtime >= cutoff:
            result.young += 1
            continue
        result.trashed += 1
        result.trashed_bytes += info.size
        if not dry_run:
            try:
                backend.move(info.key, layout.trash_key(batch, info.key))
            except ObjectNotFound:
                result.trashed -= 1  # another gc got there first
    by_pack: dict[str, list[str]] = {}
    for digest in store.packs.digests():
        where = store.packs.get(digest)
        if where is not None:
            by_pack.setdefault(where.pack, []).append(digest)
    for pack, digests in by_pack.items():
        dead = [d for d in digests if d not in reachable]
        pack_info = packs.get(pack)
        if not dead or pack_info is None:
            continue
        if pack_info.mtime >= cutoff:
            result.young += len(dead)
            continue
        _rewrite_pack(store, pack, digests, dead, batch, result, dry_run, log)
    store.packs.refresh()
    return result


def _rewrite_pack(
    store: Store,
    pack: str,
    digests: list[str],
    dead: list[str],
    batch: str,
    result: GcResult,
    dry_run: bool,
    log: Callable[[str], None] | None,
) -> None:
    """Live objects into a new pack, dead ones into the trash, then the pack is removed."""
    read = read_pack(store, pack, digests)
    if read.damaged:  # any damage: the pack is left to fsck
        result.skipped_packs.append(pack)
        if log is not None:
            log(f"pack {pack} does not verify: left in place (run cas fsck)")
        return
    result.packs_rewritten += 1
    result.trashed += len(dead)
    result.trashed_bytes += sum(len(read.contents[d]) for d in dead)
    if dry_run:
        return
    for digest in dead:
        content = read.contents[digest]
        stored = objects.pack_header(objects.RAW, len(content)) + content
        store.backend.write_bytes(layout.trash_key(batch, layout.object_key(digest)), stored)
    dead_set = set(dead)
    rewrite_pack(store, read, lambda digest: digest not in dead_set)
