"""Packs: many small objects in one file, as restic and kopia do. Writing them, and
reading an object back a block at a time; finding them is :mod:`casstore.store.indexes`.

Storing thousands of small files one object each costs a sync (locally) or a
request (on S3) per file. Batched writes put small objects in a pack instead.
A pack is a sequence of zstd frames ("blocks"), each the concatenated content
of several objects, compressed together on every core. An index, published
only after its pack, says where each object lies: the block's offset and
length in the pack, and the object's offset and length inside the
decompressed block. A pack without an index is invisible, so a crash leaves
at worst an unreferenced pack. Digests never change: a packed object reads
and verifies like a loose one (``docs/FORMAT.md``).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO

from blake3 import blake3

from casstore.backends.base import Backend
from casstore.errors import IntegrityError
from casstore.fileio import TEMP_MARK
from casstore.format import layout
from casstore.format.digest import PREFIX
from casstore.format.objects import one_shot_compressor
from casstore.format.packindex import (
    BLOCK_SIZE,
    MAX_PACKED_SIZE,
    Location,
    Row,
    encode_index,
)
from casstore.store.indexes import IndexSet
from casstore.store.staging import staging_error

#: A pack is closed once it holds this many compressed bytes.
TARGET_PACK_SIZE = 64 << 20


class BlockReader:
    """Reads packed objects a block at a time; the last few blocks stay decoded, as a
    checkout or a verify reads neighbours in turn."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._blocks: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    def read(self, digest: str, where: Location) -> bytes:
        """The (unverified) content of a packed object; the caller verifies it."""
        block_id = (where.pack, where.block_offset)
        with self._lock:
            block = self._blocks.get(block_id)
        if block is None:
            block = self._read_block(digest, where)
            with self._lock:
                # A few blocks stay decoded: materialising reads neighbours in turn.
                self._blocks[block_id] = block
                while len(self._blocks) > 4:
                    self._blocks.popitem(last=False)
        return block[where.offset : where.offset + where.length]

    def _read_block(self, digest: str, where: Location) -> bytes:
        import zstandard

        end = where.block_offset + where.block_length
        # A missing pack raises ObjectNotFound: gc may have rewritten it since the
        # indexes were read, and the caller looks again.
        frame = self._backend.read_range(where.key, where.block_offset, end)
        if len(frame) != where.block_length:
            raise IntegrityError(f"{digest}: its pack {where.pack} is truncated")
        # A block holds at most BLOCK_SIZE plus one object: more is not ours. The size a
        # frame declares is checked first: decompress() allocates it whatever
        # max_output_size says (which bounds only frames that declare none).
        limit = BLOCK_SIZE + MAX_PACKED_SIZE
        try:
            declared = zstandard.frame_content_size(frame)
            if declared > limit:
                raise IntegrityError(
                    f"{digest}: a block in pack {where.pack} claims {declared} bytes "
                    f"(a block holds at most {limit})"
                )
            return bytes(zstandard.ZstdDecompressor().decompress(frame, max_output_size=limit))
        except zstandard.ZstdError as exc:
            raise IntegrityError(
                f"{digest}: a corrupt block in pack {where.pack} ({exc})"
            ) from None


class PackWriter:
    """Gathers small objects into blocks, compresses blocks on every core, writes
    them in order to a pack, and publishes the pack, then its index."""

    def __init__(self, backend: Backend, index: IndexSet, level: int) -> None:
        self._backend = backend
        self._index = index
        self._level = level
        workers = os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="casstore-pack")
        # Bounds memory: blocks waiting to be compressed or written.
        self._slots = threading.BoundedSemaphore(2 * workers)
        self._lock = threading.RLock()
        self._block = bytearray()
        self._block_rows: list[tuple[str, int, int]] = []
        self._sealed: list[tuple[Future[bytes], list[tuple[str, int, int]]]] = []
        self._file: IO[bytes] | None = None
        self._hasher = blake3()
        self._rows: list[Row] = []
        self._pending: set[str] = set()
        #: Every pack this writer published (one may have existed already: same bytes).
        self.published: list[str] = []

    def holds(self, digest: str) -> bool:
        return digest in self._pending

    def add(self, digest: str, content: bytes) -> None:
        with self._lock:
            self._add(digest, content)

    def _add(self, digest: str, content: bytes) -> None:
        if digest in self._pending:
            return
        self._pending.add(digest)
        self._block_rows.append((digest, len(self._block), len(content)))
        self._block += content
        if len(self._block) >= BLOCK_SIZE:
            self._seal()

    def _compress(self, block: bytes) -> bytes:
        try:
            return bytes(one_shot_compressor(self._level).compress(block))
        finally:
            self._slots.release()

    def _seal(self) -> None:
        if not self._block_rows:
            return
        self._slots.acquire()
        block, rows = bytes(self._block), self._block_rows
        self._block, self._block_rows = bytearray(), []
        self._sealed.append((self._pool.submit(self._compress, block), rows))
        self._write_ready(wait=False)

    def _write_ready(self, wait: bool) -> None:
        """Append compressed blocks to the pack file, in order."""
        while self._sealed and (wait or self._sealed[0][0].done()):
            future, rows = self._sealed.pop(0)
            frame = future.result()
            try:
                if self._file is None:
                    self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - until flush()
                        dir=self._backend.staging_dir(), prefix=f"{TEMP_MARK}pack-", delete=False
                    )
                offset = self._file.tell()
                self._file.write(frame)
            except OSError as exc:  # a full disk is the store's failure, not the input's
                raise staging_error(exc) from exc
            self._hasher.update(frame)
            self._rows.extend((d, offset, len(frame), o, n) for d, o, n in rows)
            if self._file.tell() >= TARGET_PACK_SIZE:
                self._publish()

    def flush(self) -> None:
        """Publish everything added so far (pack synced, then its index)."""
        with self._lock:
            self._seal()
            self._write_ready(wait=True)
            self._publish()

    def _publish(self) -> None:
        if self._file is None:
            return
        file, rows, hasher = self._file, self._rows, self._hasher
        self._file, self._rows, self._hasher = None, [], blake3()
        try:
            file.flush()
            os.fsync(file.fileno())
            file.close()
        except OSError as exc:
            Path(file.name).unlink(missing_ok=True)
            raise staging_error(exc) from exc
        pack = PREFIX + hasher.hexdigest()
        self._backend.publish(Path(file.name), layout.pack_key(pack))
        # Only now may anything point into the pack.
        self._backend.create_many([(layout.index_key(pack), encode_index(rows))])
        self._index.add(pack, rows)
        self._pending.difference_update(digest for digest, *_ in rows)
        self.published.append(pack)

    def close(self, *, discard: bool) -> None:
        for future, _rows in self._sealed:
            future.cancel()
        self._pool.shutdown(wait=True)
        if discard and self._file is not None:
            self._file.close()
            Path(self._file.name).unlink(missing_ok=True)
            self._file = None
