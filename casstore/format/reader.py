"""Reading a stored object: decode, re-hash, and refuse anything that is not exactly
the content its digest names (``docs/FORMAT.md`` section 3)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, BinaryIO, cast

from blake3 import blake3

from casstore.errors import ChunkMissing, IntegrityError, ObjectNotFound
from casstore.format.digest import PREFIX
from casstore.format.objects import (
    CHUNKED,
    COPY_SIZE,
    ENCODINGS,
    HEADER_SIZE,
    IO_SIZE,
    MAX_CHUNK_LIST,
    ZSTD,
    Progress,
    decode_chunk_list,
    unpack_header,
)
from casstore.writebehind import WriteBehind

if TYPE_CHECKING:
    from typing_extensions import Buffer


class _ChunkChain(io.RawIOBase):
    """The content of a chunked object: its chunks, each opened and verified in turn."""

    def __init__(
        self, digest: str, chunks: list[tuple[str, int]], open_chunk: Callable[[str], io.RawIOBase]
    ) -> None:
        super().__init__()
        self._digest = digest
        self._chunks = list(reversed(chunks))
        self._open = open_chunk
        self._current: io.RawIOBase | None = None

    def _next(self) -> io.RawIOBase | None:
        if self._current is None and self._chunks:
            chunk, _ = self._chunks.pop()
            try:
                self._current = self._open(chunk)
            except ObjectNotFound:
                raise ChunkMissing(self._digest, chunk) from None
        return self._current

    def readinto(self, buffer: Buffer) -> int:
        view = memoryview(buffer).cast("B")
        while (current := self._next()) is not None:
            n = current.readinto(view)
            if n:
                return int(n)
            current.close()
            self._current = None
        return 0

    def read(self, size: int = -1, /) -> bytes:
        return super().read(size) or b""

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        super().close()


class _Counted(io.RawIOBase):
    """A stream that counts the bytes read through it (an object's stored size)."""

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self.inner = inner
        self.count = 0

    def readinto(self, buffer: Buffer) -> int:
        n = self.inner.readinto(buffer)  # type: ignore[attr-defined]
        self.count += n or 0
        return int(n or 0)

    def read(self, size: int = -1, /) -> bytes:
        data = self.inner.read(size)
        self.count += len(data)
        return data

    def close(self) -> None:
        self.inner.close()
        super().close()


class VerifyingReader(io.RawIOBase):
    """A readable stream of an object's content that re-hashes as it goes.

    At the end of the content it compares size and digest and raises
    :class:`IntegrityError` on a mismatch, so a caller that reads to EOF never
    takes wrong bytes for right ones. Callers that must not expose unverified
    bytes (``get_file``, ``cat``) read to the end before publishing anything.
    """

    def __init__(
        self,
        stored: BinaryIO,
        digest: str,
        open_chunk: Callable[[str], io.RawIOBase] | None = None,
        *,
        packed: bool = False,
    ) -> None:
        super().__init__()
        self.digest = digest
        self._stored = _Counted(stored)
        stored = cast(BinaryIO, self._stored)
        encoding, self.size = unpack_header(stored.read(HEADER_SIZE), digest)
        #: ``raw``, ``zstd``, ``chunked``, or ``packed`` (the content of a pack's block).
        self.encoding = "packed" if packed else ENCODINGS[encoding]
        self._packed = packed
        #: For a chunked object, its chunks (digest, size); None otherwise.
        self.chunks: list[tuple[str, int]] | None = None
        self._hasher = blake3()
        self._count = 0
        self._verified = False
        self._source: IO[bytes]
        #: What the decoder raises on bytes that are not a valid encoding.
        self._corrupt: tuple[type[Exception], ...] = ()
        if encoding == CHUNKED:
            if open_chunk is None:
                raise IntegrityError(f"{digest}: a chunked object is read through its store")
            self.chunks = decode_chunk_list(stored.read(MAX_CHUNK_LIST + 1), self.size, digest)
            self._source = cast(IO[bytes], _ChunkChain(digest, self.chunks, open_chunk))
        elif encoding == ZSTD:
            import zstandard

            self._corrupt = (zstandard.ZstdError,)
            self._source = zstandard.ZstdDecompressor().stream_reader(
                stored, read_size=IO_SIZE, read_across_frames=True, closefd=False
            )
        else:
            self._source = stored

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._verified or not len(view):
            return 0
        try:
            n = self._source.readinto(view)  # type: ignore[attr-defined]
        except self._corrupt as exc:
            raise IntegrityError(f"{self.digest}: stored object is corrupt ({exc})") from exc
        if n == 0:
            self._finish()
            return 0
        self._count += n
        if self._count > self.size:
            raise IntegrityError(f"{self.digest}: stored object is longer than its recorded size")
        self._hasher.update(view[:n])
        return int(n)

    def read(self, size: int = -1, /) -> bytes:
        """``size`` bytes, fewer only at the end (as a file does): callers such as
        ``tarfile`` take a short read for the end of the data."""
        if size is None or size < 0:
            return self.readall()
        out = bytearray(size)
        view = memoryview(out)
        filled = 0
        while filled < size and (n := self.readinto(view[filled:])):
            filled += n
        del view
        del out[filled:]
        return bytes(out)

    def readall(self) -> bytes:
        out = bytearray()
        buf = bytearray(min(max(self.size - self._count, 1) + 1, IO_SIZE))
        while n := self.readinto(buf):
            out += memoryview(buf)[:n]
        return bytes(out)

    def copy_to(self, dest: IO[bytes], progress: Progress | None = None) -> int:
        """Write the whole content to ``dest`` and verify it; returns the size.

        The fast path for large objects: this thread decodes while a second
        thread hashes and writes. ``dest`` has received every byte by the time
        :class:`IntegrityError` is raised, so write to something you discard on
        error.
        """
        if self._count or self._verified:
            raise ValueError("copy_to must start at the beginning of the object")

        def consume(piece: bytes) -> None:
            self._hasher.update(piece)
            dest.write(piece)

        with WriteBehind(consume) as behind:
            for piece in self._decoded():
                self._count += len(piece)
                if self._count > self.size:
                    raise IntegrityError(
                        f"{self.digest}: stored object is longer than its recorded size"
                    )
                behind.put(piece)
                if progress is not None:
                    progress(len(piece))
        self._finish()
        return self._count

    def _decoded(self) -> Iterator[bytes]:
        while True:
            try:
                piece = self._source.read(COPY_SIZE)
            except self._corrupt as exc:
                raise IntegrityError(f"{self.digest}: stored object is corrupt ({exc})") from exc
            if not piece:
                return
            yield piece

    def _finish(self) -> None:
        if self._count != self.size:
            raise IntegrityError(
                f"{self.digest}: stored object is truncated ({self._count} of {self.size} bytes)"
            )
        actual = PREFIX + self._hasher.hexdigest()
        if actual != self.digest:
            raise IntegrityError(f"{self.digest}: content hashes to {actual}")
        self._verified = True

    @property
    def stored_size(self) -> int:
        """Stored bytes read so far: once read to the end, the object's stored size (for a
        packed object, its content's share of the block)."""
        return self._stored.count - HEADER_SIZE if self._packed else self._stored.count

    @property
    def verified(self) -> bool:
        """True once the whole content has been read and matched its digest."""
        return self._verified

    def close(self) -> None:
        if not self.closed:
            try:
                if self._source is not cast(IO[bytes], self._stored):
                    self._source.close()
            finally:
                self._stored.close()
        super().close()
