"""Finding packed objects: the store's index files, read on demand.

A process lists ``index/`` once: a few merged indexes and at most a few pack
indexes, because writers merge them as they go (:mod:`casstore.store.compact`).
An index file is read only when a lookup needs it, and searched where it lies:
mapped from a local disk, fetched whole when small, or a fanout bucket at a
time when large. No table of every packed object is ever built, so neither
requests nor memory grow with the store's history (``docs/FORMAT.md``, section 4).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from struct import Struct

from casstore.backends.base import Backend, KeyInfo
from casstore.errors import IntegrityError, ObjectNotFound
from casstore.format import layout
from casstore.format import packindex as fmt
from casstore.format.digest import PREFIX
from casstore.format.packindex import Location, Row

#: Remote index files up to this size are fetched whole; larger ones a bucket at a time.
WHOLE_LIMIT = 8 << 20
#: Files with at most this many entries get a dict, so a lookup costs one probe.
DICT_LIMIT = 1 << 18
#: Fetched buckets of large remote files kept per file.
BUCKETS_KEPT = 256
_PACK_ENTRY = Struct("<32sQIII")


@dataclass(frozen=True)
class Listed:
    """An index file as a listing shows it."""

    key: str
    size: int
    #: The pack a pack index describes; None for a merged index.
    pack: str | None
    #: The entry count a merged index's name gives; None for a pack index.
    merged: int | None

    @property
    def entries(self) -> int:
        if self.merged is not None:
            return self.merged
        return max(0, (self.size - fmt.PACK_INDEX_HEADER) // fmt.PACK_INDEX_ENTRY)


def listed(info: KeyInfo) -> Listed | None:
    """The index file a listed key is, or None for anything else under ``index/``."""
    merged = layout.merged_of_key(info.key)
    if merged is not None:
        return Listed(info.key, info.size, None, merged[0])
    pack = layout.pack_of_index_key(info.key)
    return Listed(info.key, info.size, pack, None) if pack is not None else None


class IndexFile:
    """One index file, loaded on first use and searched without decoding it whole."""

    def __init__(self, backend: Backend, info: Listed, data: bytes | None = None) -> None:
        self.info = info
        self._backend = backend
        self._lock = threading.Lock()
        self._loaded = False
        self._data: bytes | memoryview | None = data
        self._packs: list[str] = []
        self._entry = _PACK_ENTRY
        self._start = fmt.PACK_INDEX_HEADER
        self._count = 0
        self._bits = 0
        self._fanout = b""
        self._dict: dict[bytes, int] | None = None
        self._buckets: OrderedDict[int, bytes] = OrderedDict()

    # -- loading ------------------------------------------------------------------

    def _load(self) -> None:
        with self._lock:
            if not self._loaded:
                self._read_header()
                self._loaded = True

    def _whole(self) -> bytes | memoryview:
        mapped = self._backend.mapped(self.info.key)
        return mapped if mapped is not None else self._backend.read_bytes(self.info.key)

    def _read_header(self) -> None:
        key = self.info.key
        if self.info.merged is None:
            whole = self._data if self._data is not None else self._whole()
            count = fmt.index_count(bytes(whole[: fmt.PACK_INDEX_HEADER]), len(whole), key)
            assert self.info.pack is not None
            self._data, self._packs, self._count = whole, [self.info.pack], count
            return
        data = self._data
        if data is None:
            data = self._backend.mapped(key)
        if data is None and self.info.size <= WHOLE_LIMIT:
            data = self._backend.read_bytes(key)
        if data is not None:
            head = bytes(data[: fmt.MERGED_HEADER_SIZE])
        else:  # large and remote: a bucket at a time
            head = self._backend.read_range(key, 0, fmt.MERGED_HEADER_SIZE)
        shape = fmt.parse_merged_header(head, key)
        if data is not None and len(data) != shape.size:
            raise IntegrityError(f"{key}: merged index has the wrong length")
        tables = (
            data[shape.pack_table : shape.entries]
            if data is not None
            else self._backend.read_range(key, shape.pack_table, shape.entries)
        )
        if len(tables) != shape.entries - shape.pack_table:
            raise IntegrityError(f"{key}: merged index is truncated")
        raw_packs = bytes(tables[: 32 * shape.packs])
        self._packs = [PREFIX + raw_packs[i : i + 32].hex() for i in range(0, len(raw_packs), 32)]
        self._fanout = bytes(tables[32 * shape.packs :])
        self._data, self._entry, self._start = data, fmt.MERGED_ENTRY, shape.entries
        self._count, self._bits = shape.count, shape.bits
        if fmt.bucket_range(self._fanout, (1 << shape.bits) - 1)[1] != shape.count:
            raise IntegrityError(f"{key}: merged index has a bad fanout table")

    # -- rows ---------------------------------------------------------------------

    def _rows(self, lo: int, hi: int) -> tuple[bytes | memoryview, int]:
        """A buffer holding rows [lo, hi) and the offset of row ``lo`` in it."""
        size = self._entry.size
        if self._data is not None:
            return self._data, self._start + lo * size
        with self._lock:
            cached = self._buckets.get(lo)
        if cached is None:
            start = self._start + lo * size
            cached = self._backend.read_range(self.info.key, start, self._start + hi * size)
            if len(cached) != (hi - lo) * size:
                raise IntegrityError(f"{self.info.key}: merged index is truncated")
            with self._lock:
                self._buckets[lo] = cached
                while len(self._buckets) > BUCKETS_KEPT:
                    self._buckets.popitem(last=False)
        return cached, 0

    def _decode(self, buffer: bytes | memoryview, offset: int) -> tuple[bytes, str, Location]:
        if self._entry is _PACK_ENTRY:
            raw, *where = _PACK_ENTRY.unpack_from(buffer, offset)
            return raw, self._packs[0], Location(self._packs[0], *where)
        raw, number, *where = fmt.MERGED_ENTRY.unpack_from(buffer, offset)
        if number >= len(self._packs):
            raise IntegrityError(f"{self.info.key}: an entry names a pack it does not list")
        return raw, self._packs[number], Location(self._packs[number], *where)

    def _span(self, raw: bytes) -> tuple[int, int]:
        if not self._bits:
            return 0, self._count
        return fmt.bucket_range(self._fanout, fmt.bucket_of(raw, self._bits))

    def _first(self, raw: bytes) -> int:
        """The first row whose digest is >= ``raw`` (within its bucket)."""
        lo, hi = self._span(raw)
        buffer, base = self._rows(lo, hi)
        size, first = self._entry.size, lo
        while lo < hi:
            mid = (lo + hi) // 2
            at = base + (mid - first) * size
            if bytes(buffer[at : at + 32]) < raw:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def find(self, raw: bytes) -> list[Location]:
        """Every location this file gives for the object (several packs may hold it)."""
        if not self._loaded:
            self._load()
        if self._data is not None and self._count <= DICT_LIMIT:
            # Asked for every file of a snapshot: one probe, the rows read in place.
            found_row = (self._dict or self._build_dict()).get(raw)
            if found_row is None:
                return []
            row, lo, hi, buffer, base = found_row, 0, self._count, self._data, self._start
        else:
            row = self._first(raw)
            lo, hi = self._span(raw)
            buffer, base = self._rows(lo, hi)
        found = []
        while row < hi:
            at = base + (row - lo) * self._entry.size
            if buffer[at : at + 32] != raw:  # a row's digest leads it: no need to decode
                break
            found.append(self._decode(buffer, at)[2])
            row += 1
        return found

    def _build_dict(self) -> dict[bytes, int]:
        assert self._data is not None
        data, size, start = self._data, self._entry.size, self._start
        table = {}
        for row in range(self._count - 1, -1, -1):  # the first row of a digest wins
            at = start + row * size
            table[bytes(data[at : at + 32])] = row
        with self._lock:
            self._dict = table
        return table

    def with_prefix(self, hexprefix: str) -> Iterator[str]:
        """Digests of this file that start with ``hexprefix`` (at least 8 hex characters)."""
        self._load()
        low = bytes.fromhex(hexprefix.ljust(64, "0"))
        row, (lo, hi) = self._first(low), self._span(low)
        buffer, base = self._rows(lo, hi)
        while row < hi:
            at = base + (row - lo) * self._entry.size
            digest = bytes(buffer[at : at + 32]).hex()
            if not digest.startswith(hexprefix):
                break
            yield PREFIX + digest
            row += 1

    def rows(self) -> Iterator[tuple[bytes, str, Location]]:
        """Every entry, in order: (raw digest, pack, location)."""
        self._load()
        step = 1 << 14
        for lo in range(0, self._count, step):
            hi = min(self._count, lo + step)
            if self._data is not None:
                buffer, base = self._data, self._start + lo * self._entry.size
            else:
                start = self._start + lo * self._entry.size
                end = start + (hi - lo) * self._entry.size
                buffer, base = self._backend.read_range(self.info.key, start, end), 0
            for row in range(hi - lo):
                yield self._decode(buffer, base + row * self._entry.size)

    def packs(self) -> list[str]:
        self._load()
        return list(self._packs)


class IndexSet:
    """Lookups over every index file of a store; listed once, refreshed on a miss."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._files: dict[str, IndexFile] | None = None
        self._ordered: list[IndexFile] | None = None  # _files, as files() returns them
        self._exists: dict[str, bool] = {}

    def refresh(self) -> None:
        """List ``index/`` again: files written since by others appear, merged-away ones go."""
        found = [f for info in self._backend.list_detailed(layout.INDEX) if (f := listed(info))]
        with self._lock:
            old = self._files or {}
            self._files = {f.key: old.get(f.key) or IndexFile(self._backend, f) for f in found}
            self._ordered = None

    def files(self) -> list[IndexFile]:
        """The index files, largest first: most lookups end in the first."""
        ordered = self._ordered  # sorted once per change, not once per lookup
        if ordered is None:
            if self._files is None:
                self.refresh()
            with self._lock:
                assert self._files is not None
                files = self._files.values()
                ordered = sorted(files, key=lambda f: (-f.info.entries, f.info.key))
                self._ordered = ordered
        return ordered

    def listed(self) -> list[Listed]:
        return [f.info for f in self.files()]

    def file(self, key: str) -> IndexFile | None:
        """The listed file under ``key`` (loaded already, perhaps), or None."""
        return (self._files or {}).get(key)

    def candidates(self, digest: str) -> Iterator[Location]:
        """Places an index gives for the object, likeliest first, found lazily."""
        return self._search(digest)

    def _search(self, digest: str) -> Iterator[Location]:
        raw = bytes.fromhex(digest[len(PREFIX) :])
        for file in self.files():
            try:
                yield from file.find(raw)
            except ObjectNotFound:
                continue  # merged away since the listing: its entries live on elsewhere

    def get(self, digest: str) -> Location | None:
        """Where the object is packed, if any index says so (the pack may be gone)."""
        return next(self._search(digest), None)

    def __contains__(self, digest: str) -> bool:
        return self.get(digest) is not None

    def locations(self, digest: str) -> list[Location]:
        """Every place an index gives for the object, first the likeliest."""
        return list(dict.fromkeys(self._search(digest)))

    def present(self, digest: str) -> Location | None:
        """A location whose pack exists now: what a writer may rely on instead of storing
        the object again (an index entry alone may name a pack gc has since removed)."""
        for where in self._search(digest):
            if self.pack_exists(where.pack):
                return where
        return None

    def pack_exists(self, pack: str) -> bool:
        known = self._exists.get(pack)  # one atomic lookup, asked for every file: no lock
        if known is None:
            known = self._backend.exists(layout.pack_key(pack))
            with self._lock:
                self._exists[pack] = known
        return known

    def add(self, pack: str, rows: list[Row]) -> None:
        """A pack index this process just published: searchable without reading it back."""
        data = fmt.encode_index(rows)
        info = Listed(layout.index_key(pack), len(data), pack, None)
        with self._lock:
            if self._files is not None:
                self._files[info.key] = IndexFile(self._backend, info, data)
                self._ordered = None
            self._exists[pack] = True

    def replaced(self, removed: Iterable[str], added: Listed | None) -> None:
        """Index files merged away (``removed``) and the merged one that holds them."""
        with self._lock:
            if self._files is None:
                return
            for key in removed:
                self._files.pop(key, None)
            if added is not None:
                self._files.setdefault(added.key, IndexFile(self._backend, added))
            self._ordered = None

    def entries(self) -> Iterator[tuple[str, Location]]:
        """Every (digest, location) of every index file; a digest may repeat."""
        for file in self.files():
            try:
                for raw, _pack, where in file.rows():
                    yield PREFIX + raw.hex(), where
            except ObjectNotFound:
                continue

    def digests(self) -> set[str]:
        return {digest for digest, _ in self.entries()}

    def with_prefix(self, hexprefix: str) -> set[str]:
        found: set[str] = set()
        for file in self.files():
            try:
                found.update(file.with_prefix(hexprefix))
            except ObjectNotFound:
                continue
        return found
