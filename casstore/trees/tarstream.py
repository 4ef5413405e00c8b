"""A minimal streaming tar reader: ustar, GNU long names and PAX headers.

``tarfile`` in stream mode costs about 60 µs a member in Python; snapshots
have tens of thousands of members, and ingest must be bounded by compression,
not by header parsing. This reads only what a tree needs and checks every
header's checksum, so garbage and truncation are errors, not silent data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from casstore.errors import ArchiveError

BLOCK = 512
#: The most a long name, a long link target (GNU ``L``/``K``) or a PAX header may hold:
#: far above any real path (Linux's PATH_MAX is 4096), far below what memory notices.
MAX_META = 1 << 20
#: What may follow the end-of-archive block (record padding: 10 KiB by default, 1 MiB
#: with ``tar -b 2048``); read to the end so a compressed stream's checksum is checked.
MAX_TRAILER = 16 << 20
TYPES = {
    b"0": "file",
    b"\x00": "file",
    b"7": "file",
    b"1": "hardlink",
    b"2": "symlink",
    b"5": "dir",
    b"3": "special",
    b"4": "special",
    b"6": "special",
}


@dataclass
class TarHeader:
    name: str
    kind: str
    size: int
    mode: int
    linkname: str


def _number(field: bytes, what: str) -> int:
    if field[:1] in (b"\x80", b"\xff"):  # GNU base-256 for large values
        value = int.from_bytes(field[1:], "big")
        # 0xff leads a negative number in two's complement (as GNU tar writes it).
        return value - (1 << (8 * (len(field) - 1))) if field[:1] == b"\xff" else value
    text = field.partition(b"\x00")[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise ArchiveError(f"{what}: a malformed tar header") from None


def _text(field: bytes) -> str:
    return field.partition(b"\x00")[0].decode("utf-8", "surrogateescape")


def _checksum_ok(header: bytes, what: str) -> bool:
    stored = _number(header[148:156], what)
    # Its own field counts as spaces; the trailing zeros (most of a header) add nothing.
    unsigned = sum(header.rstrip(b"\0")) - sum(header[148:156]) + 8 * 32
    if stored == unsigned:
        return True
    # Some old writers summed signed bytes (counted only then: it costs a pass).
    high = sum(1 for b in header[:148] + header[156:] if b > 127)
    return stored == unsigned - 256 * high


def _pax(data: bytes, what: str) -> dict[str, str]:
    """PAX records ("LENGTH KEY=VALUE\n"), each wholly inside the declared data: one that
    is not is refused, never read past (readers that do disagree on the member's name)."""
    records: dict[str, str] = {}
    pos, end = 0, len(data.rstrip(b"\x00"))  # NUL padding after the records is no record
    while pos < end:
        space = data.find(b" ", pos)
        digits = data[pos:space]
        length = int(digits) if len(digits) <= 20 and digits.isdigit() else 0
        record = data[space + 1 : pos + length - 1]
        if length <= 0 or pos + length > len(data) or data[pos + length - 1] != 0x0A:
            raise ArchiveError(f"{what}: a malformed PAX header")
        key, equals, value = record.partition(b"=")
        if not equals:
            raise ArchiveError(f"{what}: a malformed PAX header")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _pax_size(text: str, name: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ArchiveError(f"{name!r}: a PAX size that is not a number ({text[:20]!r})")
    return int(text)


class TarReader:
    """Iterate headers with :meth:`headers`; read each file's data with :meth:`read`
    before asking for the next header."""

    def __init__(self, stream: IO[bytes], what: str) -> None:
        self._stream = stream
        self._what = what
        self._remaining = 0
        self._padding = 0

    def _exact(self, n: int) -> bytes:
        data = self._stream.read(n)
        if len(data) != n:
            raise ArchiveError(f"{self._what}: a truncated archive")
        return data

    def _skip_data(self) -> None:
        left = self._remaining + self._padding
        while left:
            left -= len(self._exact(min(left, 1 << 20)))
        self._remaining = self._padding = 0

    def _drain(self) -> None:
        # Read to the end: a compressed stream's checksum comes last, so data damaged
        # inside it is only noticed there (and a producer piping in is not cut off).
        left = MAX_TRAILER
        while chunk := self._stream.read(1 << 16):
            left -= len(chunk)
            if left < 0:
                limit = MAX_TRAILER >> 20
                raise ArchiveError(f"{self._what}: over {limit} MiB after the end-of-archive block")

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the current member's data (all of it with -1)."""
        n = self._remaining if n < 0 else min(n, self._remaining)
        data = self._exact(n)
        self._remaining -= n
        return data

    def headers(self) -> Iterator[TarHeader]:
        long_name = long_link = ""
        pax: dict[str, str] = {}
        while True:
            self._skip_data()
            header = self._stream.read(BLOCK)
            if header == bytes(BLOCK) and not (pax or long_name or long_link):
                self._drain()  # end of archive (a second zero block may follow)
                return
            if len(header) != BLOCK or header == bytes(BLOCK):
                # A tar cut at a member boundary ends without its zero block: without
                # that check it would read as a smaller snapshot.
                raise ArchiveError(f"{self._what}: a truncated archive (no end-of-archive block)")
            if not _checksum_ok(header, self._what):
                raise ArchiveError(f"{self._what}: a corrupt tar header (bad checksum)")
            typeflag = header[156:157]
            size = _number(header[124:136], self._what)
            if size < 0:
                raise ArchiveError(f"{self._what}: a tar header with a negative size")
            if typeflag in (b"L", b"K", b"x", b"g"):
                if size > MAX_META:
                    raise ArchiveError(
                        f"{self._what}: a tar header claims {size} bytes of long name or PAX "
                        f"data (at most {MAX_META} are read)"
                    )
                data = self._exact(size)
                self._exact(-size % BLOCK)
                if typeflag == b"L":
                    long_name = _text(data)
                elif typeflag == b"K":
                    long_link = _text(data)
                elif typeflag == b"x":
                    pax.update(_pax(data, self._what))
                continue  # a global PAX header ('g') describes no member
            name = _text(header[0:100])
            if header[257:262] == b"ustar" and header[345:500].strip(b"\x00"):
                name = _text(header[345:500]) + "/" + name
            name = pax.get("path", long_name or name)
            linkname = pax.get("linkpath", long_link or _text(header[157:257]))
            if "size" in pax:
                size = _pax_size(pax["size"], name)
            kind = TYPES.get(typeflag)
            if kind is None:
                raise ArchiveError(f"{name!r}: an unsupported tar member type {typeflag!r}")
            long_name = long_link = ""
            pax = {}
            if kind == "file" and name.endswith("/"):
                kind = "dir"  # old tars mark folders by a trailing slash only
            # As tarfile does: only regular files carry data, whatever the size field says.
            self._remaining = size if kind == "file" else 0
            self._padding = -self._remaining % BLOCK
            yield TarHeader(name, kind, size, _number(header[100:108], name), linkname)
