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
    assert marker["casstore_format"] == 1


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
