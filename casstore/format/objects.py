"""How one object is stored: a 16-byte header, then the content, raw, zstd or chunked.

The header records the encoding and the content size, so ``stat`` needs no
decompression and a reader knows when to stop. The digest covers only the
content, never the header or the compressed bytes (``docs/FORMAT.md``).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, Final, Protocol

from blake3 import blake3

from casstore.errors import IntegrityError
from casstore.format.digest import PREFIX

MAGIC: Final = b"CASO"
VERSION: Final = 1
RAW: Final = 0
ZSTD: Final = 1
#: The payload lists the object's chunks (see ``docs/FORMAT.md``); only a store reads it.
CHUNKED: Final = 2
ENCODINGS: Final = {RAW: "raw", ZSTD: "zstd", CHUNKED: "chunked"}
_CHUNK_ENTRY = struct.Struct("<32sQ")
#: A piece list longer than this is not one we wrote (a 1 TiB object has ~1 million).
MAX_CHUNK_LIST = 64 << 20
_HEADER = struct.Struct("<4sBBHQ")
HEADER_SIZE: Final = _HEADER.size

#: How much is read, hashed and compressed at a time; bounds memory per stream.
IO_SIZE = 1 << 20
#: Copying out reads larger pieces: fewer calls into the decompressor.
COPY_SIZE = 4 << 20
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
    """A chunked object's stored bytes: header (total size), then per piece its raw
    32-byte digest and its size."""
    total = sum(size for _, size in chunks)
    body = b"".join(
        _CHUNK_ENTRY.pack(bytes.fromhex(digest[len(PREFIX) :]), size) for digest, size in chunks
    )
    return pack_header(CHUNKED, total) + body


def decode_chunk_list(body: bytes, size: int, what: str) -> list[tuple[str, int]]:
    """The chunks of a chunked object whose header said ``size``; IntegrityError if bad."""
    if len(body) % _CHUNK_ENTRY.size or len(body) > MAX_CHUNK_LIST:
        raise IntegrityError(f"{what}: a malformed piece list")
    chunks = [(PREFIX + raw.hex(), length) for raw, length in _CHUNK_ENTRY.iter_unpack(body)]
    if sum(length for _, length in chunks) != size or any(n <= 0 for _, n in chunks):
        raise IntegrityError(f"{what}: its piece list does not add up to its size")
    return chunks


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


def encode_bytes(data: bytes | memoryview, level: int) -> tuple[bytes | memoryview, int]:
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

    Compression is chosen from the first piece: compressing it must save at
    least ``MIN_SAVING``. ``dest`` must be seekable (the header's size field is
    written last). Memory stays at a few pieces whatever the size.
    """
    import zstandard

    hasher = blake3()
    first = source.read(IO_SIZE)
    zstd = _compression_pays(one_shot_compressor(level).compress, first)
    dest.write(pack_header(ZSTD if zstd else RAW, 0))
    size = 0
    writer: IO[bytes] = dest
    if zstd:
        cctx = zstandard.ZstdCompressor(
            level=level, threads=threads if len(first) == IO_SIZE else 0, write_checksum=False
        )
        writer = cctx.stream_writer(dest, closefd=False, write_size=IO_SIZE)
    piece = first
    while piece:
        hasher.update(piece)
        writer.write(piece)
        size += len(piece)
        if progress is not None:
            progress(len(piece))
        piece = source.read(IO_SIZE)
    if zstd:
        writer.flush(zstandard.FLUSH_FRAME)  # type: ignore[call-arg]
    stored_size = dest.tell()
    dest.seek(0)
    dest.write(pack_header(ZSTD if zstd else RAW, size))
    dest.seek(stored_size)
    return Encoded(PREFIX + hasher.hexdigest(), size, stored_size, ENCODINGS[ZSTD if zstd else RAW])
