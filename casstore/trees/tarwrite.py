"""A minimal, fast, deterministic tar writer: ustar headers, PAX records for what ustar
cannot hold (long or non-ASCII names and link targets, sizes of 8 GiB and more).

``tarfile`` costs tens of microseconds a member; a snapshot has tens of
thousands. Every header is the same for the same entry (mtime 1980-01-01, uid
and gid 0, no owner names), so one tree always gives the same bytes.
"""

from __future__ import annotations

from typing import IO
from zlib import adler32

BLOCK = 512
EPOCH = 315532800
_END = bytes(2 * BLOCK)
_IDS = b"0000000\0" * 2  # uid and gid
_MTIME = b"%011o\0" % EPOCH
_MAGIC = b"ustar\x0000"
#: The largest size the ustar size field holds (11 octal digits).
_MAX_USTAR_SIZE = 8**11 - 1


def _pax_record(key: str, value: str) -> bytes:
    payload = f" {key}={value}\n".encode("utf-8", "surrogateescape")
    length = len(payload) + 1
    while len(str(length)) + len(payload) != length:  # the length counts its own digits
        length = len(str(length)) + len(payload)
    return str(length).encode() + payload


def byte_sum(block: bytes) -> int:
    """The sum of a 512-byte header's bytes, as its checksum counts them, summed in C:
    Adler-32's low half is 1 + the sum of the bytes while that stays below 65521, as
    it does for 256 bytes (sum() cost a third of a member's time, written or read)."""
    return (adler32(block[:256]) & 0xFFFF) + (adler32(block[256:]) & 0xFFFF) - 2


def _block(name: bytes, mode: int, size: int, typeflag: bytes, linkname: bytes) -> bytes:
    head = b"".join(
        (
            name.ljust(100, b"\0"),
            b"%07o\0" % mode,
            _IDS,
            b"%011o\0" % size,
            _MTIME,
            b" " * 8,  # the checksum sums every byte with its own field read as spaces
            typeflag,
            linkname.ljust(100, b"\0"),
            _MAGIC,
        )
    ).ljust(BLOCK, b"\0")
    return head[:148] + b"%06o\0 " % byte_sum(head) + head[156:]


def _fits(text: bytes) -> bool:
    return len(text) <= 100 and text.isascii()


def header(path: str, *, kind: str, size: int = 0, mode: int = 0o644, target: str = "") -> bytes:
    """The header block(s) of one member: a PAX header first when ustar cannot hold it."""
    name = (path + "/" if kind == "dir" else path).encode("utf-8", "surrogateescape")
    link = target.encode("utf-8", "surrogateescape")
    records = b""
    if not _fits(name):
        records += _pax_record("path", path + ("/" if kind == "dir" else ""))
        name = name[:100].decode("ascii", "ignore").encode("ascii")
    if not _fits(link):
        records += _pax_record("linkpath", target)
        link = link[:100].decode("ascii", "ignore").encode("ascii")
    if size > _MAX_USTAR_SIZE:
        records += _pax_record("size", str(size))
    typeflag = {"file": b"0", "dir": b"5", "symlink": b"2"}[kind]
    out = b""
    if records:
        padding = -len(records) % BLOCK
        out = _block(b"././@PaxHeader", 0o644, len(records), b"x", b"") + records + bytes(padding)
    return out + _block(name, mode, min(size, _MAX_USTAR_SIZE), typeflag, link)


def padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


def end(out: IO[bytes]) -> None:
    """The end of the archive: two zero blocks."""
    out.write(_END)


def stopped(why: str) -> bytes:
    """What ends a tar that stops before its end on a stream that cannot be taken back:
    a PAX header saying ``why``, then a member header with a wrong checksum. No reader
    takes the archive for whole (GNU tar exits 2, Python's tarfile raises, cas refuses
    it), where a stream cut at a member boundary reads as a smaller tree."""
    records = _pax_record("comment", why)
    pax = _block(b"././@PaxHeader", 0o644, len(records), b"x", b"")
    return pax + records + bytes(-len(records) % BLOCK) + why.encode().ljust(BLOCK, b"\0")[:BLOCK]
