"""A minimal streaming tar reader: ustar, GNU long names and PAX headers.

``tarfile`` in stream mode costs about 60 µs a member in Python; snapshots
have tens of thousands of members, and ingest must be bounded by compression,
not by header parsing. This reads only what a tree needs and checks every
header's checksum, so garbage and truncation are errors, not silent data.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from typing import IO

from casstore.ahead import ahead as run_ahead
from casstore.errors import ArchiveError
from casstore.trees.tarwrite import byte_sum

BLOCK = 512
_ZEROS = bytes(BLOCK)
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
    try:  # the common field: octal digits ended by NULs or spaces (one C call)
        return int(field.rstrip(b" \x00") or b"0", 8)
    except ValueError:
        pass
    if field[:1] in (b"\x80", b"\xff"):  # GNU base-256 for large values
        value = int.from_bytes(field[1:], "big")
        # 0xff leads a negative number in two's complement (as GNU tar writes it).
        return value - (1 << (8 * (len(field) - 1))) if field[:1] == b"\xff" else value
    # Anything after a NUL is not part of the number (and a NUL inside failed above).
    text = field.partition(b"\x00")[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise ArchiveError(f"{what}: a malformed tar header") from None


def _text(field: bytes) -> str:
    return field.partition(b"\x00")[0].decode("utf-8", "surrogateescape")


def _checksum_ok(header: bytes, field: bytes, what: str) -> bool:
    stored = _number(field, what)
    # Its own field counts as spaces.
    unsigned = byte_sum(header) - sum(field) + 8 * 32
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


class Mapped:
    """A regular file read through a memory map: each read is a view, not a copy.

    A plain tar on disk is most of a snapshot's bytes; read as a stream, every
    member was copied twice (into a buffer, then out of it) before being hashed.
    Pages behind the reads are let go as it goes, so resident memory stays bounded
    by ``KEEP``, not by the archive (a view read again faults its pages back in).
    Views stay valid while anyone holds one, after :meth:`close` too.
    """

    #: Bytes read and still mapped in, at most, before those behind the last read go.
    KEEP = 16 << 20

    def __init__(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        self._map = mmap.mmap(fd, size, access=mmap.ACCESS_READ) if size else None
        if self._map is not None:
            self._map.madvise(mmap.MADV_SEQUENTIAL)  # read ahead, as a stream would
        self._view = memoryview(self._map) if self._map is not None else memoryview(b"")
        self._pos = self._dropped = 0

    def read(self, n: int) -> memoryview:
        """A view of the next ``n`` bytes or fewer."""
        start = self._pos
        self._advance(n)
        return self._view[start : self._pos]

    def block(self, n: int) -> bytes:
        """A copy of the next ``n`` bytes or fewer (a header: one object, not two)."""
        start = self._pos
        self._advance(n)
        return self._map[start : self._pos] if self._map is not None else b""

    def skip(self, n: int) -> bool:
        """Past the next ``n`` bytes; False when fewer are left."""
        left = len(self._view) - self._pos
        self._advance(n)
        return left >= n

    def _advance(self, n: int) -> None:
        start = self._pos
        self._pos = min(len(self._view), start + n)
        if start - self._dropped > self.KEEP:
            assert self._map is not None
            until = start - start % mmap.PAGESIZE  # what is being read now stays in
            self._map.madvise(mmap.MADV_DONTNEED, self._dropped, until - self._dropped)
            self._dropped = until

    def close(self) -> None:
        self._view.release()
        if self._map is not None:
            # A view still held (a large object being stored) keeps the map: it goes with it.
            with suppress(BufferError):
                self._map.close()


class Windowed:
    """A stream (a decompressor, a pipe) read a window at a time: each read is a view of
    the window, as :class:`Mapped` gives, so members are not copied out one by one. A
    read that crosses windows is joined (only the bytes asked for). Views hold
    immutable bytes.

    With ``ahead``, windows are read on a thread of their own, a few ahead of the
    parsing: a decompressor runs beside it (igzip's threaded reader did so for gzip
    alone, copying every byte twice more: a .tar.gz of 479 MB took 0.12 s more CPU).
    :meth:`close` joins that thread before closing the stream."""

    WINDOW = 4 << 20
    #: Windows read ahead, at most, with ``ahead``.
    AHEAD = 4

    def __init__(self, stream: IO[bytes], *, ahead: bool = False) -> None:
        self._stream = stream
        self._buf = b""
        self._view = memoryview(self._buf)
        self._off = 0
        self._eof = False
        # What has come, not all that was asked for: from a pipe whose producer stalls,
        # an error in what came, or Ctrl-C, must not wait for the rest.
        self._read1 = getattr(stream, "read1", None)
        self._stack = ExitStack()
        self._windows: Iterator[bytes] | None = None
        if ahead:
            reads = repeat(partial(stream.read, self.WINDOW))
            self._windows = self._stack.enter_context(run_ahead(reads, workers=1, depth=self.AHEAD))

    def _next(self, n: int) -> bytes:
        """The next bytes of the stream: ``n`` or fewer, or (read ahead) a window; b""
        at the end."""
        if self._eof:
            return b""
        if self._windows is not None:
            data = next(self._windows)
        else:
            data = (self._read1(n) if self._read1 is not None else b"") or self._stream.read(n)
        self._eof = not data
        return data

    def read(self, n: int) -> memoryview:
        """A view of the next ``n`` bytes or fewer (fewer only at the end)."""
        off, left = self._off, len(self._buf) - self._off
        if n <= left:
            self._off = off + n
            return self._view[off : off + n]
        pieces: list[bytes | memoryview] = [self._view[off:]] if left else []
        total = left
        while total < n:
            data = self._next(max(self.WINDOW, n - total))
            if not data:
                break
            pieces.append(data)
            total += len(data)
        if total <= n:  # the end of the stream, or exactly the bytes asked for
            self._buf, self._view, self._off = b"", memoryview(b""), 0
            return memoryview(b"".join(pieces))
        # The last read is the new window; only the bytes asked for are joined.
        last = pieces.pop()
        assert isinstance(last, bytes)  # a read's (total > left): not the old window
        used = len(last) - (total - n)
        self._buf, self._view, self._off = last, memoryview(last), used
        if not pieces:
            return self._view[:used]
        return memoryview(b"".join([*pieces, self._view[:used]]))

    def block(self, n: int) -> bytes:
        """A copy of the next ``n`` bytes or fewer (a header: one object, not two)."""
        off = self._off
        if n <= len(self._buf) - off:
            self._off = off + n
            return self._buf[off : off + n]
        return bytes(self.read(n))

    def skip(self, n: int) -> bool:
        """Past the next ``n`` bytes; False when fewer are left."""
        left = len(self._buf) - self._off
        if n <= left:
            self._off += n
            return True
        n -= left
        self._buf, self._view, self._off = b"", memoryview(b""), 0
        while n:
            data = self._next(min(n, self.WINDOW))
            if not data:
                return False
            if len(data) > n:  # a window read ahead: what is past the skip is the next
                self._buf, self._view, self._off = data, memoryview(data), n
                return True
            n -= len(data)
        return True

    def close(self) -> None:
        self._stack.close()  # the reading thread first: it may be in a read
        self._stream.close()


class TarReader:
    """Iterate headers with :meth:`headers`; read each file's data with :meth:`read`
    before asking for the next header. Data comes as views of the source: a
    :class:`Mapped` file, or any stream read through :class:`Windowed`."""

    def __init__(self, stream: IO[bytes] | Mapped | Windowed, what: str) -> None:
        self._source = stream if isinstance(stream, (Mapped, Windowed)) else Windowed(stream)
        self._what = what
        self._remaining = 0
        self._padding = 0

    def _skip_data(self) -> None:
        left = self._remaining + self._padding
        self._remaining = self._padding = 0
        if not self._source.skip(left):
            raise ArchiveError(f"{self._what}: a truncated archive")

    def _drain(self) -> None:
        # Read to the end: a compressed stream's checksum comes last, so data damaged
        # inside it is only noticed there (and a producer piping in is not cut off).
        left = MAX_TRAILER
        while chunk := self._source.read(1 << 16):
            left -= len(chunk)
            if left < 0:
                limit = MAX_TRAILER >> 20
                raise ArchiveError(f"{self._what}: over {limit} MiB after the end-of-archive block")

    def view(self, n: int = -1) -> memoryview:
        """Up to ``n`` bytes of the current member's data (all of it with -1), as a view
        of the source: no copy."""
        n = self._remaining if n < 0 else min(n, self._remaining)
        data = self._source.read(n)
        if len(data) != n:
            raise ArchiveError(f"{self._what}: a truncated archive")
        self._remaining -= n
        return data

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the current member's data (all of it with -1)."""
        return bytes(self.view(n))

    def readinto(self, buffer: memoryview) -> int:
        """The current member's data into ``buffer``: one copy, not two."""
        data = self.view(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def headers(self) -> Iterator[TarHeader]:
        long_name = long_link = ""
        pax: dict[str, str] = {}
        while True:
            if self._remaining or self._padding:
                self._skip_data()
            header = self._source.block(BLOCK)
            if header == _ZEROS and not (pax or long_name or long_link):
                self._drain()  # end of archive (a second zero block may follow)
                return
            if len(header) != BLOCK or header == _ZEROS:
                # A tar cut at a member boundary ends without its zero block: without
                # that check it would read as a smaller snapshot.
                raise ArchiveError(f"{self._what}: a truncated archive (no end-of-archive block)")
            if not _checksum_ok(header, header[148:156], self._what):
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
                data = self._source.block(size)
                if len(data) != size:
                    raise ArchiveError(f"{self._what}: a truncated archive")
                self._remaining, self._padding = 0, -size % BLOCK
                if typeflag == b"L":
                    long_name = _text(data)
                elif typeflag == b"K":
                    long_link = _text(data)
                elif typeflag == b"x":
                    pax.update(_pax(data, self._what))
                continue  # a global PAX header ('g') describes no member
            # Fields decoded only when used: names when no PAX or GNU header gives one,
            # link targets for links (a few microseconds of every member).
            if "path" in pax:
                name = pax["path"]
            elif long_name:
                name = long_name
            else:
                name = _text(header[0:100])
                if header[257:262] == b"ustar" and header[345:500].strip(b"\x00"):
                    name = _text(header[345:500]) + "/" + name
            if "size" in pax:
                size = _pax_size(pax["size"], name)
            kind = TYPES.get(typeflag)
            if kind is None:
                raise ArchiveError(f"{name!r}: an unsupported tar member type {typeflag!r}")
            if "linkpath" in pax:
                linkname = pax["linkpath"]
            elif long_link or kind not in ("symlink", "hardlink"):
                linkname = long_link
            else:
                linkname = _text(header[157:257])
            long_name = long_link = ""
            pax = {}
            if kind == "file" and name.endswith("/"):
                kind = "dir"  # old tars mark folders by a trailing slash only
            # As tarfile does: only regular files carry data, whatever the size field says.
            self._remaining = size if kind == "file" else 0
            self._padding = -self._remaining % BLOCK
            yield TarHeader(name, kind, size, _number(header[100:108], name), linkname)
