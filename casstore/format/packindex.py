"""Pack indexes: where each packed object lies in its pack (``docs/FORMAT.md`` section 4).

An index is a 16-byte header and one 52-byte entry per object, sorted by
digest; nothing here does I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from casstore.errors import IntegrityError
from casstore.format import layout
from casstore.format.digest import PREFIX

#: Objects up to this size are packed when written in a batch.
MAX_PACKED_SIZE = 1 << 20
#: Content gathered into one compressed block; a block never decompresses to more
#: than this plus one object.
BLOCK_SIZE = 1 << 20

INDEX_MAGIC = b"CASI"
INDEX_VERSION = 1
_INDEX_HEADER = struct.Struct("<4sBxxxQ")
_ENTRY = struct.Struct("<32sQIII")


@dataclass(frozen=True)
class Location:
    pack: str
    block_offset: int
    block_length: int
    offset: int
    length: int

    @property
    def key(self) -> str:
        return layout.pack_key(self.pack)


Row = tuple[str, int, int, int, int]


def encode_index(rows: list[Row]) -> bytes:
    """Index bytes: header, then (digest, block offset, block length, offset, length)
    sorted by digest."""
    ordered = sorted(rows)
    out = bytearray(_INDEX_HEADER.pack(INDEX_MAGIC, INDEX_VERSION, len(ordered)))
    for digest, *where in ordered:
        out += _ENTRY.pack(bytes.fromhex(digest[len(PREFIX) :]), *where)
    return bytes(out)


def decode_index(data: bytes, what: str) -> list[Row]:
    if len(data) < _INDEX_HEADER.size:
        raise IntegrityError(f"{what}: pack index is truncated")
    magic, version, count = _INDEX_HEADER.unpack_from(data)
    if magic != INDEX_MAGIC or version != INDEX_VERSION:
        raise IntegrityError(f"{what}: not a pack index this casstore reads")
    if len(data) != _INDEX_HEADER.size + count * _ENTRY.size:
        raise IntegrityError(f"{what}: pack index has the wrong length for {count} entries")
    return [
        (PREFIX + raw.hex(), *where)
        for raw, *where in _ENTRY.iter_unpack(data[_INDEX_HEADER.size :])
    ]
