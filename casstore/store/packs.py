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

import mmap
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO

from blake3 import blake3

from casstore.backends.base import Backend
from casstore.errors import IntegrityError
from casstore.fileio import TEMP_MARK
from casstore.format import layout
from casstore.format.digest import PREFIX, hash_bytes
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
#: Neighbouring blocks are read in one request of up to this many bytes ...
SPAN_BYTES = 8 << 20
#: ... reading over gaps (blocks not wanted) of up to this many.
SPAN_GAP = 256 << 10
#: Decoded blocks a reader keeps, in bytes (a block is about 1 MiB).
CACHE_BYTES = 16 << 20
#: Packs closed and waiting for (or in) their upload; the writer waits beyond this.
UPLOADS_IN_FLIGHT = 2


class BlockReader:
    """Reads packed objects a block at a time. The blocks read last stay decoded (up to
    ``CACHE_BYTES``): reading files in path order visits a block, its neighbours and it
    again (a 15,568-file tree's tar, read so, decoded its 257 blocks 607 times with 4
    blocks kept, 277 times with 32 MiB). A block wanted by several threads at once is
    read and decoded by one of them; the others wait for it."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._blocks: OrderedDict[tuple[str, int], Future[bytes]] = OrderedDict()
        self._kept = 0  # decoded bytes in _blocks

    def read(self, digest: str, where: Location) -> bytes:
        """The (unverified) content of a packed object; the caller verifies it."""
        block_id = (where.pack, where.block_offset)
        with self._lock:
            pending = self._blocks.get(block_id)
            mine = pending is None
            if pending is None:
                pending = self._blocks[block_id] = Future()
            else:
                self._blocks.move_to_end(block_id)
        if mine:
            self._decode(pending, block_id, digest, where)
        block = pending.result()
        return block[where.offset : where.offset + where.length]

    def _decode(
        self, pending: Future[bytes], block_id: tuple[str, int], digest: str, where: Location
    ) -> None:
        try:
            block = self._read_block(digest, where)
        except BaseException as exc:
            with self._lock:  # not kept: the next reader tries again (gc may have moved it)
                if self._blocks.get(block_id) is pending:
                    del self._blocks[block_id]
            pending.set_exception(exc)
            raise
        with self._lock:
            if self._blocks.get(block_id) is pending:
                self._kept += len(block)
                self._evict(keep=block_id)
        pending.set_result(block)

    def _evict(self, keep: tuple[str, int]) -> None:
        """Drop the oldest decoded blocks beyond the budget (never ``keep``, nor one still
        being decoded: its reader counts it when done)."""
        for block_id in list(self._blocks):
            if self._kept <= CACHE_BYTES:
                return
            old = self._blocks[block_id]
            if block_id != keep and old.done():
                del self._blocks[block_id]
                if old.exception() is None:
                    self._kept -= len(old.result())

    def _read_block(self, digest: str, where: Location) -> bytes:
        end = where.block_offset + where.block_length
        # A missing pack raises ObjectNotFound: gc may have rewritten it since the
        # indexes were read, and the caller looks again.
        frame = self._backend.read_range(where.key, where.block_offset, end)
        try:
            if len(frame) != where.block_length:
                raise IntegrityError(f"its pack {where.pack} is truncated")
            return decode_block(frame, where.pack)
        except IntegrityError as exc:
            raise IntegrityError(f"{digest}: {exc}") from None


def decode_block(frame: bytes | memoryview, pack: str) -> bytes:
    """A block's content; IntegrityError (naming the pack, not an object) when the
    frame is not a block casstore could have written."""
    import zstandard

    # A block holds at most BLOCK_SIZE plus one object: more is not ours. The size a
    # frame declares is checked first: decompress() allocates it whatever
    # max_output_size says (which bounds only frames that declare none).
    limit = BLOCK_SIZE + MAX_PACKED_SIZE
    try:
        declared = zstandard.frame_content_size(frame)
        if declared > limit:
            raise IntegrityError(
                f"a block in pack {pack} claims {declared} bytes (a block holds at most {limit})"
            )
        return bytes(zstandard.ZstdDecompressor().decompress(frame, max_output_size=limit))
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"a corrupt block in pack {pack} ({exc})") from None


def check_packed(digest: str, content: bytes | memoryview) -> None:
    """IntegrityError unless ``content``, read from a pack, hashes to ``digest``."""
    actual = hash_bytes(content)
    if actual != digest:
        raise IntegrityError(f"{digest}: its packed copy hashes to {actual}")


def block_spans(
    blocks: list[tuple[int, int]], limit: int = SPAN_BYTES
) -> list[list[tuple[int, int]]]:
    """Blocks ``(offset, length)`` of one pack, sorted by offset, grouped into spans
    that one request each fetches: neighbours, up to ``limit`` bytes a span (restic
    reads whole packs; a request per block costs more than its bytes on S3)."""
    spans: list[list[tuple[int, int]]] = []
    for offset, length in blocks:
        if spans:
            first, (last, last_length) = spans[-1][0][0], spans[-1][-1]
            near = offset - (last + last_length) <= SPAN_GAP
            if near and offset + length - first <= limit:
                spans[-1].append((offset, length))
                continue
        spans.append([(offset, length)])
    return spans


def read_span(
    backend: Backend, pack: str, span: list[tuple[int, int]]
) -> Iterator[tuple[int, bytes | IntegrityError]]:
    """Each block of a span (see :func:`block_spans`) as (offset, content or why it
    cannot be read), decoded one at a time; fetched in one request. ObjectNotFound
    when the pack is gone (gc may have rewritten it)."""
    start, (last, last_length) = span[0][0], span[-1]
    data = memoryview(backend.read_range(layout.pack_key(pack), start, last + last_length))
    for offset, length in span:
        frame = data[offset - start : offset - start + length]
        try:
            if len(frame) != length:
                raise IntegrityError(f"its pack {pack} is truncated")
            yield offset, decode_block(frame, pack)
        except IntegrityError as exc:
            yield offset, exc


def _immutable_view(content: object) -> bool:
    return (
        isinstance(content, memoryview)
        and content.readonly
        and isinstance(content.obj, (bytes, mmap.mmap))
    )


class PackWriter:
    """Gathers small objects into blocks, compresses blocks on every core, writes
    them in order to a pack, and publishes the pack, then its index, on another
    thread while the next pack fills (on S3 an upload takes as long as filling)."""

    def __init__(self, backend: Backend, index: IndexSet, level: int) -> None:
        self._backend = backend
        self._index = index
        self._level = level
        workers = os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="casstore-pack")
        # Bounds memory: blocks waiting to be compressed or written.
        self._slots = threading.BoundedSemaphore(2 * workers)
        self._lock = threading.RLock()
        # The block being filled, as its objects: joined on a compressing thread, not
        # copied twice on this one (which parses a snapshot).
        self._block: list[bytes | memoryview] = []
        self._block_size = 0
        self._block_rows: list[tuple[str, int, int]] = []
        self._sealed: list[tuple[Future[bytes], list[tuple[str, int, int]]]] = []
        self._file: IO[bytes] | None = None
        self._size = 0  # of the pack being written
        self._hasher = blake3()
        self._rows: list[Row] = []
        # Published packs are uploaded one at a time, the next one filling meanwhile;
        # bounded, so staged packs never pile up on disk faster than they go.
        self._uploader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="casstore-upload")
        self._upload_slots = threading.BoundedSemaphore(UPLOADS_IN_FLIGHT)
        self._uploads: list[tuple[Future[None], IO[bytes]]] = []
        # Guards what uploads change: an upload never waits for the writer's lock.
        self._done_lock = threading.Lock()
        self._pending: set[str] = set()
        #: Every pack this writer published (one may have existed already: same bytes).
        self.published: list[str] = []

    def holds(self, digest: str) -> bool:
        """Added and not yet published: present for a writer, not yet readable."""
        return digest in self._pending  # one atomic test, asked for every file: no lock

    def add(self, digest: str, content: bytes | memoryview) -> None:
        # Kept until its block is sealed: never a view of a buffer its owner may write
        # to meanwhile. A view of bytes or of a read-only map (a tar read for a tree) is
        # kept as it is: the compressing thread copies it once, into the block.
        if not isinstance(content, bytes) and not _immutable_view(content):
            content = bytes(content)
        with self._lock:
            self._add(digest, content)

    def _add(self, digest: str, content: bytes | memoryview) -> None:
        with self._done_lock:
            if digest in self._pending:
                return
            self._pending.add(digest)
        self._block_rows.append((digest, self._block_size, len(content)))
        self._block.append(content)
        self._block_size += len(content)
        if self._block_size >= BLOCK_SIZE:
            self._seal()

    def _compress(self, pieces: list[bytes | memoryview]) -> bytes:
        try:
            return bytes(one_shot_compressor(self._level).compress(b"".join(pieces)))
        finally:
            self._slots.release()

    def _seal(self) -> None:
        if not self._block_rows:
            return
        self._slots.acquire()
        pieces, rows = self._block, self._block_rows
        self._block, self._block_rows, self._block_size = [], [], 0
        self._sealed.append((self._pool.submit(self._compress, pieces), rows))
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
                    self._size = 0
                self._file.write(frame)
            except OSError as exc:  # a full disk is the store's failure, not the input's
                raise staging_error(exc) from exc
            # Counted, not asked (tell() is a system call, and lets the interpreter lock go).
            offset, self._size = self._size, self._size + len(frame)
            self._hasher.update(frame)
            self._rows.extend((d, offset, len(frame), o, n) for d, o, n in rows)
            if self._size >= TARGET_PACK_SIZE:
                self._publish()

    def flush(self) -> None:
        """Publish everything added so far (pack synced, then its index)."""
        with self._lock:
            self._seal()
            self._write_ready(wait=True)
            self._publish()
            self._reap(wait=True)

    def _publish(self) -> None:
        """Hand the pack being written to the uploader; raise an earlier upload's error."""
        self._reap(wait=False)
        if self._file is None:
            return
        file, rows, hasher = self._file, self._rows, self._hasher
        self._file, self._rows, self._hasher = None, [], blake3()
        self._upload_slots.acquire()
        try:
            future = self._uploader.submit(self._upload, file, rows, PREFIX + hasher.hexdigest())
        except BaseException:
            self._upload_slots.release()
            file.close()
            Path(file.name).unlink(missing_ok=True)
            raise
        self._uploads.append((future, file))

    def _upload(self, file: IO[bytes], rows: list[Row], pack: str) -> None:
        try:
            try:
                file.flush()
                os.fsync(file.fileno())
                file.close()
            except OSError as exc:
                file.close()
                raise staging_error(exc) from exc
            self._backend.publish(Path(file.name), layout.pack_key(pack))
            # Only now may anything point into the pack.
            self._backend.create_many([(layout.index_key(pack), encode_index(rows))])
            self._index.add(pack, rows)
            with self._done_lock:
                self._pending.difference_update(digest for digest, *_ in rows)
                self.published.append(pack)
        except BaseException:
            Path(file.name).unlink(missing_ok=True)  # publish owns it, unless it failed early
            raise
        finally:
            self._upload_slots.release()

    def _reap(self, *, wait: bool) -> None:
        """Forget finished uploads, raising the first failure (``wait``: all of them)."""
        while self._uploads and (wait or self._uploads[0][0].done()):
            future, _ = self._uploads.pop(0)
            future.result()

    def close(self, *, discard: bool) -> None:
        for sealed, _rows in self._sealed:
            sealed.cancel()
        self._pool.shutdown(wait=True)
        for upload, file in self._uploads:
            if upload.cancel():  # never started: its staged pack is ours to remove
                file.close()
                Path(file.name).unlink(missing_ok=True)
                self._upload_slots.release()
        self._uploader.shutdown(wait=True)
        if discard and self._file is not None:
            self._file.close()
            Path(self._file.name).unlink(missing_ok=True)
            self._file = None
