"""Merging index files, so that a lookup reads a few of them whatever the store's history.

Every batch publishes the index of its own pack. Once a writer sees
:data:`COMPACT_AFTER` such pack indexes, it merges them, leveled as an LSM
tree is: into the level-1 merged index, which, once it outgrows its level,
merges into level 2, and so on (level ``k`` holds up to
``LEVEL_BASE * LEVEL_RATIO ** (k - 1)`` entries). A store then has at most a
few pack indexes and one merged index per level. gc and fsck use the same
merge to drop the entries of packs they remove.

Safety without locks (``docs/FORMAT.md`` section 4): a merged index is
published (atomically, named by its content) before its inputs are deleted,
so every entry is always in some listed file; two merges of the same inputs
give duplicates, never gaps; readers that find an input gone list again.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from blake3 import blake3

from casstore.errors import ObjectNotFound
from casstore.fileio import temp_file
from casstore.format import layout
from casstore.format import packindex as fmt
from casstore.format.digest import PREFIX
from casstore.store.indexes import IndexFile, Listed

if TYPE_CHECKING:
    from casstore.store.objects import Store

#: Pack indexes a writer tolerates before it merges them.
COMPACT_AFTER = 4
#: Entries of a level-1 merged index; each level holds LEVEL_RATIO times more.
LEVEL_BASE = 4096
LEVEL_RATIO = 8

Row = tuple[bytes, bytes, int, int, int, int]


def level(entries: int) -> int:
    """The level a merged index of ``entries`` belongs to (1 and up)."""
    k, capacity = 1, LEVEL_BASE
    while entries > capacity:
        k, capacity = k + 1, capacity * LEVEL_RATIO
    return k


def plan(files: Iterable[Listed]) -> list[Listed]:
    """What to merge now: nothing while pack indexes are few; else the pack indexes, with
    every level whose merged index they would overflow into the next."""
    files = list(files)
    packs = [f for f in files if f.pack is not None]
    if len(packs) < COMPACT_AFTER:
        return []
    by_level: dict[int, list[Listed]] = {}
    for f in files:
        if f.merged is not None:
            by_level.setdefault(level(f.entries), []).append(f)
    inputs, total, k = list(packs), sum(f.entries for f in packs), 1
    top = max(by_level, default=0)
    while True:
        inputs += by_level.get(k, [])
        total = sum(f.entries for f in inputs)
        if total <= LEVEL_BASE * LEVEL_RATIO ** (k - 1) or k >= top:
            return inputs
        k += 1


def _rows(file: IndexFile, drop: set[str]) -> Iterator[Row]:
    for raw, pack, where in file.rows():
        if pack not in drop:
            yield (
                raw,
                bytes.fromhex(pack[len(PREFIX) :]),
                where.block_offset,
                where.block_length,
                where.offset,
                where.length,
            )


def merge(store: Store, inputs: list[Listed], drop: Iterable[str] = ()) -> Listed | None:
    """Publish one merged index holding every entry of ``inputs`` except those of the
    packs in ``drop``; None when nothing is left. The inputs are not deleted here.

    Streams: the inputs are read in order and merged, so memory stays small
    whatever their size.
    """
    dropped = set(drop)
    files = [store.packs.file(info.key) or IndexFile(store.backend, info) for info in inputs]
    packs = sorted({p for f in files for p in f.packs()} - dropped)
    number = {bytes.fromhex(p[len(PREFIX) :]): i for i, p in enumerate(packs)}
    histogram = [0] * (1 << fmt.MAX_BITS)
    staging = store.backend.staging_dir()
    with temp_file(staging) as (entries, _path):
        count, previous = 0, None
        for row in heapq.merge(*(_rows(f, dropped) for f in files)):
            if row[:2] == previous:
                continue  # the same entry in two inputs
            previous = row[:2]
            entries.write(fmt.MERGED_ENTRY.pack(row[0], number[row[1]], *row[2:]))
            histogram[fmt.bucket_of(row[0], fmt.MAX_BITS)] += 1
            count += 1
        if count == 0:
            return None
        bits = fmt.fanout_bits(count)
        shift = fmt.MAX_BITS - bits
        buckets = [0] * (1 << bits)
        for bucket, n in enumerate(histogram):
            buckets[bucket >> shift] += n
        shape = fmt.MergedLayout(bits, count, len(packs))
        with temp_file(staging) as (out, path):
            hasher = blake3()
            for part in (
                fmt.merged_header(shape),
                b"".join(bytes.fromhex(p[len(PREFIX) :]) for p in packs),
                fmt.fanout_table(buckets),
            ):
                out.write(part)
                hasher.update(part)
            entries.seek(0)
            while piece := entries.read(1 << 20):
                out.write(piece)
                hasher.update(piece)
            out.flush()
            os.fsync(out.fileno())
            key = layout.merged_index_key(count, PREFIX + hasher.hexdigest())
            store.backend.publish(path, key)
    return Listed(key, shape.size, None, count)


def replace(store: Store, inputs: list[Listed], drop: Iterable[str] = ()) -> Listed | None:
    """Merge ``inputs`` (dropping the packs in ``drop``), then delete them."""
    merged = merge(store, inputs, drop)
    # The merge may have the very bytes of an input (nothing dropped from a lone
    # merged index): that input is the result, and stays.
    gone = [f.key for f in inputs if merged is None or f.key != merged.key]
    store.backend.delete_many(gone)
    store.packs.replaced(gone, merged)
    return merged


def maybe_compact(store: Store) -> Listed | None:
    """After a batch: merge the store's index files if there are enough pack indexes."""
    if store.format_version < 2 or store.read_only:
        return None
    store.packs.refresh()
    inputs = plan(store.packs.listed())
    if not inputs:
        return None
    try:
        return replace(store, inputs)
    except ObjectNotFound:
        return None  # another writer merged some of them first: its merge holds them


#: Listings an index drop tries while concurrent merges replace what it listed.
_RELISTS = 10


def drop_packs(store: Store, packs: Iterable[str]) -> None:
    """Remove every index entry of ``packs`` (before the packs themselves are removed):
    their pack indexes go, and the merged indexes that name them are rewritten."""
    dropped = set(packs)
    if not dropped:
        return
    for attempt in range(_RELISTS):
        store.packs.refresh()
        try:
            affected = [
                file.info
                for file in store.packs.files()
                if (file.info.pack in dropped)
                or (file.info.merged is not None and dropped & set(file.packs()))
            ]
            if affected:
                replace(store, affected, dropped)
            return
        except ObjectNotFound:
            # Another writer merged some of them since the listing: their entries are in
            # its merge now, which the next listing shows.
            if attempt == _RELISTS - 1:
                raise


def consolidate(store: Store, drop: Iterable[str] = ()) -> Listed | None:
    """Merge every index file of the store into one (``cas upgrade``, and after gc)."""
    store.packs.refresh()
    files = store.packs.listed()
    if len(files) <= 1 and not set(drop):
        return None
    return replace(store, files, drop)
