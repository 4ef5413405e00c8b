"""docs/FORMAT.md, pinned: what another implementation writes, casstore reads, and back."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from blake3 import blake3

from casstore.errors import IntegrityError, ReadOnlyStore
from casstore.format import layout, objects
from casstore.format import packindex as pi
from casstore.format.digest import hash_bytes
from casstore.store.objects import Store
from casstore.store.open import open_store
from casstore.testing.store import payload

HELLO = "blake3:ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"


def header(encoding: int, size: int) -> bytes:
    return b"CASO" + bytes([1, encoding]) + b"\0\0" + struct.pack("<Q", size)


def test_raw_object_bytes_and_key_are_pinned(local_store: Store) -> None:
    assert local_store.put_bytes(b"hello").digest == HELLO
    key = "objects/blake3/ea/8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
    assert layout.object_key(HELLO) == key
    stored = local_store.backend.read_bytes(key)
    assert stored.hex(" ") == ("43 41 53 4f 01 00 00 00 05 00 00 00 00 00 00 00 68 65 6c 6c 6f")


def test_marker_is_pinned(local_store: Store) -> None:
    marker = json.loads(local_store.backend.read_bytes("casstore.json"))
    assert marker["casstore_format"] == 2


WORLD = "blake3:" + blake3(b"world").hexdigest()


def merged_index_golden(pack: bytes, frame_length: int) -> bytes:
    """docs/FORMAT.md section 4, by hand: a merged index of b"hello" and b"world", both in
    one block of one pack."""
    entries = sorted([(bytes.fromhex(HELLO[7:]), 0, 5), (bytes.fromhex(WORLD[7:]), 5, 5)])
    return (
        b"CASM"
        + bytes([1, 0])
        + b"\0\0"
        + struct.pack("<QI", 2, 1)
        + bytes(12)  # header
        + pack  # pack table
        + struct.pack("<I", 2)  # fanout: 0 bits, one bucket holding both entries
        + b"".join(d + struct.pack("<IQIII", 0, 0, frame_length, o, n) for d, o, n in entries)
    )


def test_merged_indexes_written_elsewhere_are_read(local_store: Store) -> None:
    frame = zstandard.ZstdCompressor(level=1).compress(b"helloworld")
    pack = blake3(frame).digest()
    local_store.backend.write_bytes(layout.pack_key("blake3:" + pack.hex()), frame)
    index = merged_index_golden(pack, len(frame))
    key = layout.merged_index_key(2, "blake3:" + blake3(index).hexdigest())
    assert key == "index/m-2-" + blake3(index).hexdigest()
    local_store.backend.write_bytes(key, index)
    fresh = open_store(local_store.url)
    assert fresh.get_bytes(HELLO) == b"hello"
    assert fresh.get_bytes(WORLD) == b"world"
    assert fresh.stat(WORLD).encoding == "packed"


def test_merged_indexes_are_written_as_specified(local_store: Store) -> None:
    # Four batches of one pack each: the fourth pack index makes the writer merge them.
    digests = [local_store.put_many([data])[0] for data in (b"a", b"b", b"c", b"d")]
    (key,) = list(local_store.backend.list(layout.INDEX))
    count, digest = layout.merged_of_key(key) or (0, "")
    data = local_store.backend.read_bytes(key)
    assert count == 4 and digest == "blake3:" + blake3(data).hexdigest()
    assert data[:4] == b"CASM" and data[4] == 1 and data[5] == 0
    assert struct.unpack_from("<QI", data, 8) == (4, 4)
    packs = [data[32 + 32 * i : 64 + 32 * i] for i in range(4)]
    assert packs == sorted(packs)
    assert struct.unpack_from("<I", data, 32 + 32 * 4) == (4,)
    entries = data[32 + 32 * 4 + 4 :]
    assert len(entries) == 4 * 56
    found = sorted(entries[i : i + 32] for i in range(0, len(entries), 56))
    assert found == sorted(bytes.fromhex(d[7:]) for d in digests)


def test_zstd_objects_written_elsewhere_are_read(local_store: Store) -> None:
    content = b"hello " * 1000
    digest = "blake3:" + blake3(content).hexdigest()
    # Another writer: two frames, with content size and checksum fields.
    half = len(content) // 2
    frames = b"".join(
        zstandard.ZstdCompressor(level=19, write_checksum=True).compress(part)
        for part in (content[:half], content[half:])
    )
    local_store.backend.write_bytes(layout.object_key(digest), header(1, len(content)) + frames)
    assert local_store.get_bytes(digest) == content
    stat = local_store.stat(digest)
    assert (stat.size, stat.encoding) == (len(content), "zstd")


@pytest.mark.parametrize(
    "stored",
    [
        header(0, 6) + b"hello",  # size says 6, payload has 5
        header(0, 4) + b"hello",  # payload longer than size
        header(1, 5) + b"hello",  # zstd declared, payload not zstd
        header(7, 5) + b"hello",  # unknown encoding
        b"CASO\x02\x00\x00\x00" + struct.pack("<Q", 5) + b"hello",  # unknown version
        header(0, 5) + b"hellO",  # wrong content
    ],
)
def test_malformed_objects_are_refused(local_store: Store, stored: bytes) -> None:
    local_store.backend.write_bytes(layout.object_key(HELLO), stored)
    with pytest.raises(IntegrityError):
        local_store.get_bytes(HELLO)
    with pytest.raises(IntegrityError):
        local_store.verify(HELLO)


# -- the checks and the arithmetic of each format, boundary by boundary --------------


def test_fanout_bits_and_buckets() -> None:
    # The fewest bits that leave count >> bits at most BUCKET_TARGET (128).
    assert [pi.fanout_bits(n) for n in (0, 128, 129, 257, 258, 515, 516)] == [
        0, 0, 1, 1, 2, 2, 3,
    ]  # fmt: skip
    assert pi.fanout_bits(1 << 40) == pi.MAX_BITS  # never more buckets than that
    raw = bytes([0b1011_0000, 0xFF, 0x00, 0x01]) + bytes(28)
    assert [pi.bucket_of(raw, bits) for bits in (0, 1, 2, 4, 16)] == [0, 1, 2, 11, 0xB0FF]
    assert pi.bucket_of(b"\xff" * 32, pi.MAX_BITS) == (1 << pi.MAX_BITS) - 1
    fanout = pi.fanout_table([2, 0, 3, 1])
    assert struct.unpack("<4I", fanout) == (2, 2, 5, 6)
    assert [pi.bucket_range(fanout, b) for b in range(4)] == [(0, 2), (2, 2), (2, 5), (5, 6)]


def test_a_merged_index_that_fans_out_finds_every_object(local_store: Store) -> None:
    # Four batches of 400: merged into one index of 1,600 entries over 16 buckets.
    batches = [[f"object {b}-{i}".encode() for i in range(400)] for b in range(4)]
    contents = [content for batch in batches for content in batch]
    digests = [d for batch in batches for d in local_store.put_many(batch)]
    (key,) = list(local_store.backend.list(layout.INDEX))
    data = local_store.backend.read_bytes(key)
    shape = pi.parse_merged_header(data, key)
    assert (shape.bits, shape.count, shape.packs) == (pi.fanout_bits(1600), 1600, 4) == (4, 1600, 4)
    fanout = data[shape.fanout : shape.entries]
    for bucket in range(1 << shape.bits):
        start, end = pi.bucket_range(fanout, bucket)
        for n in range(start, end):
            raw = data[shape.entries + 56 * n : shape.entries + 56 * n + 32]
            assert pi.bucket_of(raw, shape.bits) == bucket
    fresh = open_store(local_store.url)  # another process: reads the merged index
    for content, digest in zip(contents, digests, strict=True):
        assert fresh.get_bytes(digest) == content
    assert fresh.missing([*digests[::97], HELLO, WORLD]) == [HELLO, WORLD]
    assert fresh.resolve(digests[1234][7:20]) == digests[1234]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d[:15], "pack index is truncated"),
        (lambda d: b"CASX" + d[4:], "not a pack index this casstore reads"),
        (lambda d: d[:4] + b"\x02" + d[5:], "not a pack index this casstore reads"),
        (lambda d: d[:-1], "pack index has the wrong length for 2 entries"),
        (lambda d: d + bytes(56), "pack index has the wrong length for 2 entries"),
    ],
)
def test_damaged_pack_indexes_say_what_is_wrong(
    change: Callable[[bytes], bytes], message: str
) -> None:
    good = pi.encode_index([(HELLO, 0, 10, 0, 5), (WORLD, 0, 10, 5, 5)])
    assert [row[0] for row in pi.decode_index(good, "i")] == sorted([HELLO, WORLD])
    with pytest.raises(IntegrityError, match=f"^index x: {message}"):
        pi.decode_index(change(good), "index x")


@pytest.mark.parametrize(
    ("magic", "version", "bits", "ok"),
    [
        (b"CASM", 1, 16, True),
        (b"CASX", 1, 0, False),
        (b"CASM", 2, 0, False),
        (b"CASM", 1, 17, False),
    ],
)
def test_merged_headers_are_checked(magic: bytes, version: int, bits: int, ok: bool) -> None:
    head = struct.pack("<4sBBxxQI12x", magic, version, bits, 5, 1)
    if ok:
        assert pi.parse_merged_header(head, "m") == pi.MergedLayout(bits, 5, 1)
        return
    with pytest.raises(IntegrityError, match=r"^m: not a merged index this casstore reads"):
        pi.parse_merged_header(head, "m")
    with pytest.raises(IntegrityError, match=r"^m: merged index is truncated"):
        pi.parse_merged_header(head[:31], "m")


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"CASO\x01", "stored object is truncated"),
        (b"CASX" + header(0, 5)[4:], "stored object has a bad header"),
        (
            header(0, 5)[:4] + b"\x09" + header(0, 5)[5:],
            "stored object has an unknown version 9 or encoding 0",
        ),
        (header(7, 5), "stored object has an unknown version 1 or encoding 7"),
    ],
)
def test_damaged_object_headers_say_what_is_wrong(head: bytes, message: str) -> None:
    with pytest.raises(IntegrityError, match=f"^obj: {message}"):
        objects.unpack_header(head, "obj")


def test_piece_lists_are_checked_entry_by_entry() -> None:
    one = objects.encode_chunk_list([(HELLO, 1), (WORLD, 4)])[objects.HEADER_SIZE :]
    assert objects.decode_chunk_list(one, 5, "c") == [(HELLO, 1), (WORLD, 4)]
    with pytest.raises(IntegrityError, match=r"^c: a malformed piece list"):
        objects.decode_chunk_list(one[:-1], 5, "c")
    with pytest.raises(IntegrityError, match=r"^c: its piece list does not add up to its size"):
        objects.decode_chunk_list(one, 6, "c")
    empty_piece = objects.encode_chunk_list([(HELLO, 0), (WORLD, 5)])[objects.HEADER_SIZE :]
    with pytest.raises(IntegrityError, match="does not add up"):
        objects.decode_chunk_list(empty_piece, 5, "c")


@pytest.mark.parametrize("compressible", [True, False])
def test_progress_counts_every_byte_stored(local_store: Store, compressible: bool) -> None:
    data = payload(5 << 20, seed=2, compressible=compressible)
    seen: list[int] = []
    info = local_store.put_stream(io.BytesIO(data), progress=seen.append)
    assert info.encoding == ("zstd" if compressible else "raw")
    assert sum(seen) == len(data) and all(n > 0 for n in seen)


def test_an_empty_stream_is_stored_raw(local_store: Store) -> None:
    info = local_store.put_stream(io.BytesIO(b""))
    assert (info.digest, info.size, info.encoding) == (hash_bytes(b""), 0, "raw")
    assert local_store.get_bytes(info.digest) == b""


def test_a_batch_packs_the_same_content_once(local_store: Store) -> None:
    with local_store.batch() as batch:
        both = [batch.put_bytes(b"twice") for _ in range(2)]
    assert both == [hash_bytes(b"twice")] * 2
    (key,) = list(local_store.backend.list(layout.INDEX))
    rows = pi.decode_index(local_store.backend.read_bytes(key), key)
    assert [row[0] for row in rows] == [hash_bytes(b"twice")]


def test_a_batch_uploads_a_large_object_once(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    large = payload(2 << 20, seed=7)  # too large for a pack: an object of its own
    published: list[str] = []
    publish = local_store.backend.publish

    def recorded(local_path: Path, key: str) -> bool:
        published.append(key)
        return publish(local_path, key)

    monkeypatch.setattr(local_store.backend, "publish", recorded)
    with local_store.batch() as batch:
        digest = batch.put_bytes(large)
        assert batch.put_bytes(large) == digest  # asked on the publishing threads
    assert published == [layout.object_key(digest)]
    with local_store.batch() as batch:
        assert batch.put_bytes(large) == digest
    assert published == [layout.object_key(digest)]
    with pytest.raises(ReadOnlyStore):  # refused before anything is read or stored
        open_store(local_store.url, cache=False, read_only=True).batch()


def test_a_damaged_block_names_the_object_and_its_pack(local_store: Store) -> None:
    digests = local_store.put_many([payload(5000, seed=i, compressible=True) for i in range(3)])
    where = local_store.packs.get(digests[1])
    assert where is not None
    (pack_key,) = list(local_store.backend.list(layout.PACKS))
    stored = bytearray(local_store.backend.read_bytes(pack_key))
    stored[where.block_offset] ^= 0xFF  # the block's zstd frame no longer starts as one
    local_store.backend.write_bytes(pack_key, bytes(stored))
    fresh = open_store(local_store.url, cache=False)
    with pytest.raises(IntegrityError) as damaged:
        fresh.get_bytes(digests[1])
    assert str(damaged.value).startswith(f"{digests[1]}: a corrupt block in pack {where.pack} (")
