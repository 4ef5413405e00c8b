"""Many writes at once: small objects go into packs, large files into content-defined
chunks; everything becomes visible when the batch is flushed."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from casstore.format import layout, objects
from casstore.format.digest import PREFIX, hash_bytes
from casstore.format.objects import Progress, Readable
from casstore.format.packindex import MAX_PACKED_SIZE
from casstore.store.packs import PackWriter
from casstore.store.staging import check_expected, publish_bytes

if TYPE_CHECKING:
    from pyfastcdc import Chunk

    from casstore.store.objects import Store

#: Objects stored through a batch with a known size of at least this are chunked.
CHUNKED_MIN = 8 << 20
#: FastCDC's target chunk size (the minimum is a quarter, the maximum four times).
CDC_AVERAGE = 1 << 20
#: Loose objects (too large for a pack) being compressed and published at once.
LOOSE_IN_FLIGHT = 8


class Batch:
    """Many writes at once (see :meth:`Store.batch`): small objects go into packs,
    whose blocks are compressed on every core while the caller reads on.

    Objects become visible when the batch is flushed: on leaving the ``with``
    block, or with :meth:`flush`. A batch that fails publishes nothing more.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._writer = PackWriter(store.backend, store.packs, store.compression_level)
        #: Chunk lists waiting for their chunks to be published: digest -> stored bytes.
        self._lists: dict[str, bytes] = {}
        # Objects too large for a pack are compressed and published on other threads
        # while the caller reads on; a few at a time, to bound memory.
        self._loose: ThreadPoolExecutor | None = None
        self._loose_slots = threading.BoundedSemaphore(LOOSE_IN_FLIGHT)
        self._loose_done: list[Future[None]] = []
        #: Large objects this batch has stored or is storing: each goes up once.
        self._loose_seen: set[str] = set()
        self._loose_published = 0

    def _present(self, digest: str, *, small: bool = True) -> bool:
        """Stored live already. A small object is looked for in the pack indexes only: a
        loose copy (from a single ``put``) is rare, and a second copy in a pack is
        harmless, while a request per file would make a snapshot cost one each."""
        if self._writer.holds(digest) or self.store.packs.present(digest) is not None:
            return True
        return not small and self.store.backend.exists(layout.object_key(digest))

    def put_bytes(self, data: bytes | memoryview, *, known_absent: bool = False) -> str:
        """Store ``data``; returns its digest. Everything is published by :meth:`flush`."""
        digest = hash_bytes(data)
        if len(data) > MAX_PACKED_SIZE:
            if digest not in self._loose_seen:
                self._loose_seen.add(digest)
                self._publish_loose(digest, data, check=not known_absent)
            return digest
        if known_absent or not self._present(digest):
            self._writer.add(digest, data)
        return digest

    def _publish_loose(self, digest: str, data: bytes | memoryview, *, check: bool) -> None:
        """Store a large object on another thread; with ``check``, unless stored already
        (asked there too: on S3 that is a request, and several run at once)."""
        if self._loose is None:
            self._loose = ThreadPoolExecutor(LOOSE_IN_FLIGHT, thread_name_prefix="casstore-put")
        self._loose_slots.acquire()
        store = self.store

        def publish() -> None:
            try:
                if check and store.stored(digest):
                    return
                publish_bytes(store.backend, digest, data, store.compression_level)
                self._loose_published += 1
            finally:
                self._loose_slots.release()

        self._loose_done.append(self._loose.submit(publish))
        pending = []
        for future in self._loose_done:
            if future.done():
                future.result()  # a failure surfaces now, not at the end
            else:
                pending.append(future)
        self._loose_done = pending

    def put_file(self, path: str | os.PathLike[str], *, progress: Progress | None = None) -> str:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > MAX_PACKED_SIZE:
                return self.store.put_stream(f, progress=progress).digest
            data = f.read()
        if progress is not None:
            progress(len(data))
        return self.put_bytes(data)

    def put_stream(
        self, stream: Readable, *, size: int | None = None, expected: str | None = None
    ) -> str:
        """Store a stream; pass ``size`` when known so small ones are packed and large
        ones (``CHUNKED_MIN`` and more) are stored as content-defined chunks.

        With ``expected``, content that hashes to anything else raises
        IntegrityError and is not stored."""
        if size is not None and size >= CHUNKED_MIN:
            return self.put_chunked(stream, expected=expected)
        if size is not None and size < CHUNKED_MIN:
            data = stream.read(size)  # at most CHUNKED_MIN, a few at a time (put_bytes)
            if expected is not None:
                check_expected(hash_bytes(data), expected)
            return self.put_bytes(data)
        return self.store.put_stream(stream, expected=expected).digest

    def put_buffer(self, data: bytes | memoryview) -> str:
        """Store content already in memory (a view of a mapped archive, say): small
        content packed, large content cut into chunks where it lies, never copied."""
        if len(data) < CHUNKED_MIN:
            return self.put_bytes(data)
        from pyfastcdc import FastCDC

        # Hashed whole at once, on every core, and cut into views of it.
        return self._put_chunks(FastCDC(CDC_AVERAGE).cut_buf(data), whole=data)

    def put_chunked(self, stream: Readable, *, expected: str | None = None) -> str:
        """Store a stream as content-defined chunks (each an object, deduplicated with
        every other) plus a chunk list under the digest of the whole content.

        The list is published by :meth:`flush`, after its chunks.
        """
        from pyfastcdc import FastCDC

        return self._put_chunks(FastCDC(CDC_AVERAGE).cut_stream(stream), expected=expected)

    def _put_chunks(
        self,
        pieces: Iterable[Chunk],
        *,
        whole: bytes | memoryview | None = None,
        expected: str | None = None,
    ) -> str:
        from blake3 import blake3

        hasher = blake3(max_threads=blake3.AUTO)
        if whole is not None:
            hasher.update(whole)
        chunks: list[tuple[str, int]] = []
        for piece in pieces:
            data: bytes | memoryview = piece.data  # of ``whole``, or of a stream chunker
            if whole is None:  # which reuses its buffer: copied
                data = bytes(data)
                hasher.update(data)
            chunks.append((self.put_bytes(data), len(data)))
        digest = PREFIX + hasher.hexdigest()
        check_expected(digest, expected)
        if not self._present(digest, small=False):
            self._lists[digest] = objects.encode_chunk_list(chunks)
        return digest

    @property
    def published_packs(self) -> list[str]:
        """The packs this batch has published so far."""
        return self._writer.published

    def flush(self) -> None:
        before = len(self._writer.published)
        for future in self._loose_done:
            future.result()
        self._loose_done.clear()
        self._writer.flush()
        if self._lists:
            # Only now are all their chunks visible.
            keys = [(layout.object_key(d), data) for d, data in self._lists.items()]
            self.store.backend.create_many(keys)
            self._lists.clear()
        if len(self._writer.published) > before:
            from casstore.store.compact import maybe_compact

            maybe_compact(self.store)

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        failed = exc is not None
        try:
            if not failed:
                self.flush()
        except BaseException as error:
            failed = True
            exc = error
            raise
        finally:
            if self._loose is not None:
                self._loose.shutdown(wait=True, cancel_futures=True)
            self._writer.close(discard=failed)
            if (
                failed
                and isinstance(exc, Exception)
                and (self._writer.published or self._loose_published)
            ):
                # Removing them now could pull objects from under another writer that
                # found them present; gc's grace period is what makes removal safe.
                exc.add_note(
                    "what was stored before the failure is referenced by nothing: "
                    "`cas gc` removes it once its grace period has passed"
                )
