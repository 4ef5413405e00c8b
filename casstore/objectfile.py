"""How one object is stored: a 16-byte header, then the content, raw or zstd.

The header records the encoding and the content size, so ``stat`` needs no
decompression and a reader knows when to stop. The digest covers only the
content, never the header or the compressed bytes (``docs/FORMAT.md``).
"""

from __future__ import annotations

import io
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Final, Protocol, cast

from blake3 import blake3

from casstore.digest import PREFIX
from casstore.errors import ChunkMissing, IntegrityError, ObjectNotFound
from casstore.writebehind import WriteBehind

if TYPE_CHECKING:
    from typing_extensions import Buffer

MAGIC: Final = b"CASO"
VERSION: Final = 1
RAW: Final = 0
ZSTD: Final = 1
#: The payload lists the object's chunks (see ``docs/FORMAT.md``); only a store reads it.
CHUNKED: Final = 2
ENCODINGS: Final = {RAW: "raw", ZSTD: "zstd", CHUNKED: "chunked"}
_CHUNK_ENTRY = struct.Struct("<32sQ")
#: A chunk list longer than this is not one we wrote (a 1 TiB object has ~1 million).
MAX_CHUNK_LIST = 64 << 20
_HEADER = struct.Struct("<4sBBHQ")
HEADER_SIZE: Final = _HEADER.size

#: How much is read, hashed and compressed at a time; bounds memory per stream.
CHUNK_SIZE = 1 << 20
#: Copying out reads larger pieces: fewer calls into the decompressor.
READ_CHUNK_SIZE = 4 << 20
#: Compression must save at least this fraction of the probed bytes to be kept.
MIN_SAVING = 0.03

Progress = Callable[[int], None]


class Readable(Protocol):
    """Anything with ``read(n)``: files, pipes, sockets, a verifying reader."""

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True)
class Encoded:
    """What writing an object produced."""

    digest: str
    size: int
    stored_size: int
    encoding: str


def pack_header(encoding: int, size: int) -> bytes:
    return _HEADER.pack(MAGIC, VERSION, encoding, 0, size)


def unpack_header(data: bytes, what: str) -> tuple[int, int]:
    """Return (encoding, content size); IntegrityError when it is not a header we know."""
    if len(data) < HEADER_SIZE:
        raise IntegrityError(f"{what}: stored object is truncated (no header)")
    magic, version, encoding, _flags, size = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise IntegrityError(f"{what}: stored object has a bad header")
    if version != VERSION or encoding not in ENCODINGS:
        raise IntegrityError(
            f"{what}: stored object has an unknown version {version} or encoding {encoding}"
        )
    return encoding, size


def encode_chunk_list(chunks: list[tuple[str, int]]) -> bytes:
    """A chunked object's stored bytes: header (total size), then per chunk its raw
    32-byte digest and its size."""
    total = sum(size for _, size in chunks)
    body = b"".join(
        _CHUNK_ENTRY.pack(bytes.fromhex(digest[len(PREFIX) :]), size) for digest, size in chunks
    )
    return pack_header(CHUNKED, total) + body


def decode_chunk_list(body: bytes, size: int, what: str) -> list[tuple[str, int]]:
    """The chunks of a chunked object whose header said ``size``; IntegrityError if bad."""
    if len(body) % _CHUNK_ENTRY.size or len(body) > MAX_CHUNK_LIST:
        raise IntegrityError(f"{what}: a malformed chunk list")
    chunks = [(PREFIX + raw.hex(), length) for raw, length in _CHUNK_ENTRY.iter_unpack(body)]
    if sum(length for _, length in chunks) != size or any(n <= 0 for _, n in chunks):
        raise IntegrityError(f"{what}: its chunk list does not add up to its size")
    return chunks


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

    def readable(self) -> bool:
        return True

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
        data = super().read(size)
        return data if data is not None else b""

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        super().close()


def _compression_pays(zstd_compress: Callable[[bytes], bytes], sample: bytes) -> bool:
    if not sample:
        return False
    return len(zstd_compress(sample)) <= len(sample) * (1 - MIN_SAVING)


_local = threading.local()


def one_shot_compressor(level: int) -> Any:
    # A compressor holds megabytes of context: one per thread and level, reused.
    cache = _local.__dict__.setdefault("compressors", {})
    if level not in cache:
        import zstandard

        cache[level] = zstandard.ZstdCompressor(level=level, write_checksum=False)
    return cache[level]


def encode_bytes(data: bytes, level: int) -> tuple[bytes, int]:
    """Return (stored payload without header, encoding) for small in-memory content."""
    compressed = one_shot_compressor(level).compress(data)
    if data and len(compressed) <= len(data) * (1 - MIN_SAVING):
        return compressed, ZSTD
    return data, RAW


def write_object(
    source: Readable,
    dest: BinaryIO,
    *,
    level: int,
    threads: int,
    progress: Progress | None = None,
) -> Encoded:
    """Stream ``source`` into ``dest`` as a stored object; hash while writing.

    Compression is chosen from the first chunk: compressing it must save at
    least ``MIN_SAVING``. ``dest`` must be seekable (the header's size field is
    written last). Memory stays at a few chunks whatever the size.
    """
    import zstandard

    hasher = blake3()
    first = source.read(CHUNK_SIZE)
    zstd = _compression_pays(one_shot_compressor(level).compress, first)
    dest.write(pack_header(ZSTD if zstd else RAW, 0))
    size = 0
    writer: IO[bytes] = dest
    if zstd:
        cctx = zstandard.ZstdCompressor(
            level=level, threads=threads if len(first) == CHUNK_SIZE else 0, write_checksum=False
        )
        writer = cctx.stream_writer(dest, closefd=False, write_size=CHUNK_SIZE)
    chunk = first
    while chunk:
        hasher.update(chunk)
        writer.write(chunk)
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))
        chunk = source.read(CHUNK_SIZE)
    if zstd:
        writer.flush(zstandard.FLUSH_FRAME)  # type: ignore[call-arg]
    stored_size = dest.tell()
    dest.seek(0)
    dest.write(pack_header(ZSTD if zstd else RAW, size))
    dest.seek(stored_size)
    return Encoded(PREFIX + hasher.hexdigest(), size, stored_size, ENCODINGS[ZSTD if zstd else RAW])


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
    ) -> None:
        super().__init__()
        self.digest = digest
        self._stored = stored
        encoding, self.size = unpack_header(stored.read(HEADER_SIZE), digest)
        self.encoding = ENCODINGS[encoding]
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
                stored, read_size=CHUNK_SIZE, read_across_frames=True, closefd=False
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
        data = super().read(size)
        return data if data is not None else b""

    def readall(self) -> bytes:
        out = bytearray()
        buf = bytearray(min(max(self.size - self._count, 1) + 1, CHUNK_SIZE))
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

        def consume(chunk: bytes) -> None:
            self._hasher.update(chunk)
            dest.write(chunk)

        with WriteBehind(consume) as behind:
            for chunk in self._decoded_chunks():
                self._count += len(chunk)
                if self._count > self.size:
                    raise IntegrityError(
                        f"{self.digest}: stored object is longer than its recorded size"
                    )
                behind.put(chunk)
                if progress is not None:
                    progress(len(chunk))
        self._finish()
        return self._count

    def _decoded_chunks(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._source.read(READ_CHUNK_SIZE)
            except self._corrupt as exc:
                raise IntegrityError(f"{self.digest}: stored object is corrupt ({exc})") from exc
            if not chunk:
                return
            yield chunk

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
    def verified(self) -> bool:
        """True once the whole content has been read and matched its digest."""
        return self._verified

    def close(self) -> None:
        if not self.closed:
            try:
                if self._source is not self._stored:
                    self._source.close()
            finally:
                self._stored.close()
        super().close()
