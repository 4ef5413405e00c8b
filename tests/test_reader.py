"""The verifying reader (docs/FORMAT.md section 3) through each way of reading it:
every path hands out the bytes asked for and refuses, at the end, content that is not
exactly what its digest names."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
import zstandard

from casstore.errors import ChunkMissing, IntegrityError, ObjectNotFound
from casstore.format.digest import hash_bytes
from casstore.format.objects import (
    IO_SIZE,
    RAW,
    ZSTD,
    encode_chunk_list,
    pack_header,
    write_object,
)
from casstore.format.reader import VerifyingReader

CONTENT = bytes(range(256)) * 12  # compressible, so written as zstd
D = hash_bytes(CONTENT)

Read = Callable[[VerifyingReader], bytes]


def stored(content: bytes = CONTENT) -> bytes:
    out = io.BytesIO()
    write_object(io.BytesIO(content), out, level=3, threads=0)
    return out.getvalue()


def raw(content: bytes, size: int | None = None) -> bytes:
    return pack_header(RAW, len(content) if size is None else size) + content


def copied(reader: VerifyingReader) -> bytes:
    out = io.BytesIO()
    reader.copy_to(out)
    return out.getvalue()


def in_small_reads(reader: VerifyingReader) -> bytes:
    out = b""
    while piece := reader.read(1000):
        out += piece
    return out


WAYS: dict[str, Read] = {
    "read()": lambda r: r.read(),
    "read(None)": lambda r: r.read(None),  # type: ignore[arg-type]
    "readall": lambda r: r.readall(),
    "read(1000) until empty": in_small_reads,
    "copy_to": copied,
}


@pytest.mark.parametrize("way", sorted(WAYS))
@pytest.mark.parametrize("encoding", ["raw", "zstd"])
def test_each_way_reads_the_content_and_verifies_it(way: str, encoding: str) -> None:
    data = raw(CONTENT) if encoding == "raw" else stored()
    assert data[4 + 1] == (RAW if encoding == "raw" else ZSTD)
    reader = VerifyingReader(io.BytesIO(data), D)
    assert (reader.encoding, reader.size, reader.verified) == (encoding, len(CONTENT), False)
    assert WAYS[way](reader) == CONTENT
    assert reader.verified
    assert reader.stored_size == len(data)
    assert reader.read(10) == b"" and reader.read() == b""


@pytest.mark.parametrize("way", sorted(WAYS))
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (raw(CONTENT[:-5], len(CONTENT)), f"{D}: stored object is truncated (3067 of 3072 bytes)"),
        (raw(CONTENT + b"x", len(CONTENT)), f"{D}: stored object is longer than its recorded size"),
        (raw(CONTENT[::-1]), f"{D}: content hashes to {hash_bytes(CONTENT[::-1])}"),
        (raw(b""), f"{D}: content hashes to {hash_bytes(b'')}"),
    ],
    ids=["truncated", "longer", "other content", "empty"],
)
def test_each_way_refuses_wrong_content(way: str, data: bytes, message: str) -> None:
    reader = VerifyingReader(io.BytesIO(data), D)
    with pytest.raises(IntegrityError, match=f"^{re.escape(message)}$"):
        WAYS[way](reader)
    assert not reader.verified


@pytest.mark.parametrize("way", sorted(WAYS))
def test_corrupt_compressed_bytes_are_integrity_errors(way: str) -> None:
    data = pack_header(ZSTD, len(CONTENT)) + b"\x28\xb5\x2f\xfd" + b"\xff" * 40
    reader = VerifyingReader(io.BytesIO(data), D)
    with pytest.raises(IntegrityError, match=rf"^{D}: stored object is corrupt \(.+\)$"):
        WAYS[way](reader)


def test_a_reader_is_a_readable_raw_stream() -> None:
    """What io.BufferedReader, tarfile and zipfile take it for."""
    reader = VerifyingReader(io.BytesIO(stored()), D)
    assert reader.readable()
    assert io.BufferedReader(reader, 100).read() == CONTENT
    assert reader.verified


@pytest.mark.parametrize("way", sorted(WAYS))
def test_a_zstd_payload_of_several_frames_reads_whole(way: str) -> None:
    """docs/FORMAT.md section 3: one or more frames, as another writer may make them."""
    frames = b"".join(
        zstandard.ZstdCompressor(write_content_size=False).compress(CONTENT[i : i + 1000])
        for i in range(0, len(CONTENT), 1000)
    )
    reader = VerifyingReader(io.BytesIO(pack_header(ZSTD, len(CONTENT)) + frames), D)
    assert WAYS[way](reader) == CONTENT and reader.verified


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"XXXX" + bytes(12), f"{D}: stored object has a bad header"),
        (pack_header(2, 10) + bytes(39), f"{D}: a malformed piece list"),
    ],
)
def test_a_damaged_header_or_piece_list_names_the_object(data: bytes, message: str) -> None:
    with pytest.raises(IntegrityError, match=f"^{re.escape(message)}$"):
        VerifyingReader(io.BytesIO(data), D, lambda digest: io.BytesIO())  # type: ignore[arg-type,return-value]


def test_a_read_returns_as_many_bytes_as_asked() -> None:
    reader = VerifyingReader(io.BytesIO(stored()), D)
    assert reader.read(0) == b""
    assert reader.read(3000) == CONTENT[:3000]  # several decoder reads make one read
    assert reader.read(1000) == CONTENT[3000:]
    assert reader.verified


def test_an_empty_buffer_reads_nothing_and_verifies_nothing() -> None:
    reader = VerifyingReader(io.BytesIO(raw(CONTENT)), D)
    assert reader.readinto(bytearray()) == 0
    assert not reader.verified
    buffer = bytearray(len(CONTENT))
    assert reader.readinto(buffer) == len(CONTENT) and bytes(buffer) == CONTENT
    assert not reader.verified  # the end is not yet seen
    assert reader.readall() == b"" and reader.verified


def test_an_empty_object_verifies_through_every_way() -> None:
    empty = hash_bytes(b"")
    for way in WAYS.values():
        reader = VerifyingReader(io.BytesIO(raw(b"")), empty)
        assert way(reader) == b"" and reader.verified


def test_large_content_read_whole_crosses_the_io_size() -> None:
    content = bytes(range(251)) * (IO_SIZE // 251 * 3)
    for read in (lambda r: r.read(), copied):
        reader = VerifyingReader(io.BytesIO(raw(content)), hash_bytes(content))
        assert read(reader) == content and reader.verified


def test_copy_to_counts_progress_and_starts_at_the_beginning() -> None:
    seen: list[int] = []
    reader = VerifyingReader(io.BytesIO(stored()), D)
    assert reader.copy_to(io.BytesIO(), seen.append) == len(CONTENT)
    assert sum(seen) == len(CONTENT)
    started = VerifyingReader(io.BytesIO(stored()), D)
    started.read(1)
    with pytest.raises(ValueError, match=r"^copy_to must start at the beginning of the object$"):
        started.copy_to(io.BytesIO())
    started.read()
    with pytest.raises(ValueError, match="beginning"):
        started.copy_to(io.BytesIO())


def test_a_packed_block_counts_only_its_content_as_stored() -> None:
    reader = VerifyingReader(io.BytesIO(raw(CONTENT)), D, packed=True)
    assert reader.encoding == "packed"
    assert reader.read() == CONTENT
    assert reader.stored_size == len(CONTENT)


def chunk_store(pieces: list[bytes]) -> tuple[dict[str, bytes], list[tuple[str, int]]]:
    objects = {hash_bytes(p): raw(p) for p in pieces}
    return objects, [(hash_bytes(p), len(p)) for p in pieces]


def test_a_chunked_object_reads_its_chunks_in_order() -> None:
    pieces = [CONTENT[:1000], CONTENT[1000:1001], CONTENT[1001:]]
    objects, chunks = chunk_store(pieces)
    opened: list[VerifyingReader] = []

    def open_chunk(digest: str) -> io.RawIOBase:
        opened.append(VerifyingReader(io.BytesIO(objects[digest]), digest))
        return opened[-1]

    for way in WAYS.values():
        opened.clear()
        reader = VerifyingReader(io.BytesIO(encode_chunk_list(chunks)), D, open_chunk)
        assert (reader.encoding, reader.chunks) == ("chunked", chunks)
        assert way(reader) == CONTENT and reader.verified
        assert [r.verified for r in opened] == [True, True, True]
    partway = VerifyingReader(io.BytesIO(encode_chunk_list(chunks)), D, open_chunk)
    assert partway.read(500) == CONTENT[:500]
    partway.close()
    assert opened[-1].closed and partway.closed


def test_a_chunked_object_needs_its_store_and_its_chunks() -> None:
    objects, chunks = chunk_store([CONTENT[:10], CONTENT[10:]])
    listing = encode_chunk_list(chunks)
    with pytest.raises(IntegrityError, match=f"^{D}: a chunked object is read through its store$"):
        VerifyingReader(io.BytesIO(listing), D)

    def missing(digest: str) -> io.RawIOBase:
        if digest == chunks[1][0]:
            raise ObjectNotFound(digest)
        return VerifyingReader(io.BytesIO(objects[digest]), digest)

    reader = VerifyingReader(io.BytesIO(listing), D, missing)
    with pytest.raises(ChunkMissing, match=f"^{D}: its chunk {chunks[1][0]} is missing$"):
        reader.read()


def test_closing_closes_what_was_opened() -> None:
    for data in (raw(CONTENT), stored()):
        source = io.BytesIO(data)
        reader = VerifyingReader(source, D)
        reader.read(5)
        reader.close()
        reader.close()  # twice is harmless
        assert reader.closed and source.closed
