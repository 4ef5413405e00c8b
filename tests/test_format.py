"""docs/FORMAT.md, pinned: what another implementation writes, casstore reads, and back."""

from __future__ import annotations

import json
import struct

import pytest
import zstandard
from blake3 import blake3

from casstore.errors import IntegrityError
from casstore.format import layout
from casstore.store.objects import Store
from casstore.store.open import open_store

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
