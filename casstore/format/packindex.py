"""Pack indexes: where each packed object lies in its pack (``docs/FORMAT.md`` section 4).

Two kinds, both fixed-size entries sorted by digest, so a lookup is a binary
search that reads only what it needs, never a table of every object:

- a pack's own index (``CASI``): a 16-byte header, then a 52-byte entry per
  object of that one pack;
- a merged index (``CASM``): the entries of many packs, with a table of those
  packs and a fanout table that narrows a lookup to a bucket of entries.

Nothing here does I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import msgspec

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


class Location(msgspec.Struct, frozen=True):
    """Where a packed object lies. A Struct: one is made for every index lookup, ten
    times faster than a frozen dataclass."""

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


def index_count(head: bytes, length: int, what: str) -> int:
    """The entry count of a pack index of ``length`` bytes starting with ``head``;
    IntegrityError unless header and length agree."""
    if len(head) < _INDEX_HEADER.size:
        raise IntegrityError(f"{what}: pack index is truncated")
    magic, version, count = _INDEX_HEADER.unpack_from(head)
    if magic != INDEX_MAGIC or version != INDEX_VERSION:
        raise IntegrityError(f"{what}: not a pack index this casstore reads")
    if length != _INDEX_HEADER.size + count * _ENTRY.size:
        raise IntegrityError(f"{what}: pack index has the wrong length for {count} entries")
    return int(count)


def decode_index(data: bytes, what: str) -> list[Row]:
    index_count(data, len(data), what)
    return [
        (PREFIX + raw.hex(), *where)
        for raw, *where in _ENTRY.iter_unpack(data[_INDEX_HEADER.size :])
    ]


PACK_INDEX_HEADER = _INDEX_HEADER.size
PACK_INDEX_ENTRY = _ENTRY.size

# -- merged indexes ----------------------------------------------------------------

MERGED_MAGIC = b"CASM"
MERGED_VERSION = 1
#: magic, version, fanout bits, entry count, pack count (32 bytes).
_MERGED_HEADER = struct.Struct("<4sBBxxQI12x")
#: digest, pack number, block offset, block length, offset in block, length (56 bytes).
MERGED_ENTRY = struct.Struct("<32sIQIII")
MERGED_HEADER_SIZE = _MERGED_HEADER.size
#: Entries per fanout bucket a writer aims at; the fanout has at most 2**MAX_BITS buckets.
BUCKET_TARGET = 128
MAX_BITS = 16


@dataclass(frozen=True)
class MergedLayout:
    """Where the parts of a merged index lie, from its header."""

    bits: int
    count: int
    packs: int

    @property
    def pack_table(self) -> int:
        return MERGED_HEADER_SIZE

    @property
    def fanout(self) -> int:
        return MERGED_HEADER_SIZE + 32 * self.packs

    @property
    def entries(self) -> int:
        return self.fanout + 4 * (1 << self.bits)

    @property
    def size(self) -> int:
        return self.entries + MERGED_ENTRY.size * self.count


def fanout_bits(count: int) -> int:
    """How many leading digest bits a merged index of ``count`` entries fans out on."""
    bits = 0
    while bits < MAX_BITS and (count >> bits) > BUCKET_TARGET:
        bits += 1
    return bits


def bucket_of(raw: bytes, bits: int) -> int:
    """The fanout bucket of a raw digest: its first ``bits`` bits."""
    return int.from_bytes(raw[:4], "big") >> (32 - bits) if bits else 0


def merged_header(layout_: MergedLayout) -> bytes:
    return _MERGED_HEADER.pack(
        MERGED_MAGIC, MERGED_VERSION, layout_.bits, layout_.count, layout_.packs
    )


def parse_merged_header(data: bytes, what: str) -> MergedLayout:
    """The layout a merged index's header describes; IntegrityError if it is not one."""
    if len(data) < MERGED_HEADER_SIZE:
        raise IntegrityError(f"{what}: merged index is truncated")
    magic, version, bits, count, packs = _MERGED_HEADER.unpack_from(data)
    if magic != MERGED_MAGIC or version != MERGED_VERSION or bits > MAX_BITS:
        raise IntegrityError(f"{what}: not a merged index this casstore reads")
    return MergedLayout(bits, count, packs)


def fanout_table(bucket_counts: list[int]) -> bytes:
    """The fanout from the entry count of each bucket: for bucket i, how many entries lie
    in buckets 0..i (cumulative, as git's pack index has it)."""
    table, total = [], 0
    for n in bucket_counts:
        total += n
        table.append(total)
    return struct.pack(f"<{len(table)}I", *table)


def bucket_range(fanout: bytes | memoryview, bucket: int) -> tuple[int, int]:
    """Entries [start, end) of ``bucket``, from the fanout table's bytes."""
    end = int.from_bytes(fanout[4 * bucket : 4 * bucket + 4], "little")
    start = int.from_bytes(fanout[4 * bucket - 4 : 4 * bucket], "little") if bucket else 0
    return start, end
