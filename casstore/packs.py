"""Packs: many small objects in one file, as restic and kopia do.

Storing thousands of small files one object each costs a sync (locally) or a
request (on S3) per file. Batched writes put small objects in a pack instead:
the concatenation of their stored forms (header and payload, exactly as a
loose object), published atomically, then an index listing where each object
lies. A pack without an index is invisible, so a crash leaves at worst an
unreferenced pack. Digests never change: a packed object reads and verifies
like a loose one (``docs/FORMAT.md``).
"""

from __future__ import annotations

import os
import struct
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from casstore import layout
from casstore.backends.base import Backend
from casstore.digest import PREFIX
from casstore.errors import IntegrityError, ObjectNotFound

#: Objects up to this size are packed when written in a batch.
MAX_PACKED_SIZE = 1 << 20
#: A pack is closed once it holds this many bytes.
TARGET_PACK_SIZE = 32 << 20

INDEX_MAGIC = b"CASI"
INDEX_VERSION = 1
_INDEX_HEADER = struct.Struct("<4sBxxxQ")
_ENTRY = struct.Struct("<32sQQ")


@dataclass(frozen=True)
class Location:
    pack: str
    offset: int
    length: int

    @property
    def key(self) -> str:
        return layout.pack_key(self.pack)


def encode_index(entries: list[tuple[str, int, int]]) -> bytes:
    """Index bytes: header, then (digest, offset, length) sorted by digest."""
    rows = sorted(entries)
    out = bytearray(_INDEX_HEADER.pack(INDEX_MAGIC, INDEX_VERSION, len(rows)))
    for digest, offset, length in rows:
        out += _ENTRY.pack(bytes.fromhex(digest[len(PREFIX) :]), offset, length)
    return bytes(out)


def decode_index(data: bytes, what: str) -> list[tuple[str, int, int]]:
    if len(data) < _INDEX_HEADER.size:
        raise IntegrityError(f"{what}: pack index is truncated")
    magic, version, count = _INDEX_HEADER.unpack_from(data)
    if magic != INDEX_MAGIC or version != INDEX_VERSION:
        raise IntegrityError(f"{what}: not a pack index this casstore reads")
    if len(data) != _INDEX_HEADER.size + count * _ENTRY.size:
        raise IntegrityError(f"{what}: pack index has the wrong length for {count} entries")
    return [
        (PREFIX + raw.hex(), offset, length)
        for raw, offset, length in _ENTRY.iter_unpack(data[_INDEX_HEADER.size :])
    ]


class PackIndex:
    """Where every packed object is: all the store's indexes, loaded once, refreshed on a miss."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._where: dict[str, Location] = {}
        self._loaded: set[str] = set()
        self._lock = threading.Lock()
        self._ever_loaded = False

    def refresh(self) -> None:
        """Read the indexes written since the last look (by this or another writer)."""
        with self._lock:
            self._ever_loaded = True
            for key in self._backend.list(layout.INDEX):
                pack = layout.pack_of_index_key(key)
                if pack is None or pack in self._loaded:
                    continue
                for digest, offset, length in decode_index(self._backend.read_bytes(key), key):
                    self._where.setdefault(digest, Location(pack, offset, length))
                self._loaded.add(pack)

    def _ensure(self) -> None:
        if not self._ever_loaded:
            self.refresh()

    def get(self, digest: str) -> Location | None:
        self._ensure()
        return self._where.get(digest)

    def __contains__(self, digest: str) -> bool:
        return self.get(digest) is not None

    def digests(self) -> list[str]:
        self._ensure()
        return list(self._where)

    def add(self, pack: str, entries: list[tuple[str, int, int]]) -> None:
        with self._lock:
            for digest, offset, length in entries:
                self._where.setdefault(digest, Location(pack, offset, length))
            self._loaded.add(pack)


class PackWriter:
    """Collects stored objects into packs; publishes each pack, then its index."""

    def __init__(self, backend: Backend, index: PackIndex, target: int = TARGET_PACK_SIZE) -> None:
        self._backend = backend
        self._index = index
        self._target = target
        self._file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self._hasher = blake3()
        self._entries: list[tuple[str, int, int]] = []
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    def holds(self, digest: str) -> bool:
        return digest in self._pending

    def add(self, digest: str, stored: bytes) -> None:
        with self._lock:
            if digest in self._pending:
                return
            if self._file is None:
                self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives until flush()
                    dir=self._backend.staging_dir(), prefix=".tmp-pack-", delete=False
                )
            offset = self._file.tell()
            self._file.write(stored)
            self._hasher.update(stored)
            self._entries.append((digest, offset, len(stored)))
            self._pending.add(digest)
            full = offset + len(stored) >= self._target
        if full:
            self.flush()

    def flush(self) -> None:
        """Publish the open pack (synced) and then its index. Idempotent."""
        with self._lock:
            if self._file is None:
                return
            file, entries, hasher = self._file, self._entries, self._hasher
            self._file, self._entries, self._hasher = None, [], blake3()
            self._pending = set()
        file.flush()
        os.fsync(file.fileno())
        file.close()
        pack = PREFIX + hasher.hexdigest()
        self._backend.publish(Path(file.name), layout.pack_key(pack))
        # Only now may anything point into the pack.
        self._backend.create_many([(layout.index_key(pack), encode_index(entries))])
        self._index.add(pack, entries)

    def discard(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                Path(self._file.name).unlink(missing_ok=True)
            self._file, self._entries, self._pending = None, [], set()


def read_packed(backend: Backend, digest: str, where: Location) -> bytes:
    """The stored form of a packed object (header and payload)."""
    try:
        data = backend.read_range(where.key, where.offset, where.offset + where.length)
    except ObjectNotFound:
        raise IntegrityError(f"{digest}: its pack {where.pack} is missing") from None
    if len(data) != where.length:
        raise IntegrityError(f"{digest}: its pack {where.pack} is truncated")
    return data
