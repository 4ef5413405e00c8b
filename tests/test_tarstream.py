"""The streaming tar reader, member by member against the standard library's tarfile,
and at the edges where tarfile forgives and casstore must not: truncation, bounds,
malformed PAX records, checksums."""

from __future__ import annotations

import io
import re
import tarfile
import threading
from collections.abc import Callable
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casstore.errors import ArchiveError
from casstore.trees.tarstream import (
    BLOCK,
    MAX_META,
    MAX_TRAILER,
    TYPES,
    TarReader,
    Windowed,
    _number,
)

Member = tuple[str, str, int, int, str, bytes]
END = bytes(2 * BLOCK)


def read_all(data: bytes, what: str = "t.tar") -> list[Member]:
    reader = TarReader(io.BytesIO(data), what)
    return [(h.name, h.kind, h.size, h.mode, h.linkname, reader.read()) for h in reader.headers()]


def refused(data: bytes, match: str) -> None:
    with pytest.raises(ArchiveError, match=match):
        read_all(data)


def header(
    name: bytes = b"f",
    typeflag: bytes = b"0",
    size: int | bytes = 0,
    mode: bytes = b"0000644\0",
    linkname: bytes = b"",
    magic: bytes = b"ustar\x0000",
    prefix: bytes = b"",
    signed: bool = False,
    checksum_delta: int = 0,
) -> bytes:
    """One header block as a writer would make it; ``size`` as a number or a raw field."""
    block = bytearray(BLOCK)
    block[0:100] = name.ljust(100, b"\0")
    block[100:108] = mode
    block[124:136] = b"%011o\0" % size if isinstance(size, int) else size
    block[156:157] = typeflag
    block[157:257] = linkname.ljust(100, b"\0")
    block[257:265] = magic
    block[345:500] = prefix.ljust(155, b"\0")
    block[148:156] = b" " * 8
    total = sum(b - 256 if signed and b > 127 else b for b in block) + checksum_delta
    block[148:156] = b"%06o\0 " % total
    return bytes(block)


def member(data: bytes = b"", **fields: Any) -> bytes:
    fields.setdefault("size", len(data))
    return header(**fields) + data + bytes(-len(data) % BLOCK)


def meta(typeflag: bytes, data: bytes) -> bytes:
    return member(data, name=b"././@LongLink", typeflag=typeflag)


def pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


# -- the same members as tarfile, in every format tarfile writes ------------------------

KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.LNKTYPE: "hardlink",
    tarfile.SYMTYPE: "symlink",
    tarfile.DIRTYPE: "dir",
    tarfile.CHRTYPE: "special",
    tarfile.BLKTYPE: "special",
    tarfile.FIFOTYPE: "special",
}
NAMES = st.sampled_from(
    [
        "a",
        "dir/file.txt",
        "é/ü.bin",
        "x" * 99,
        "n" * 100,
        "y" * 101,
        "p" * 80 + "/" + "q" * 80,
        "deep/" * 40 + "f",
        "sp ace/tab\tname",
    ]
)
LINKS = st.sampled_from(["", "target", "../../outside/f", "/usr/bin/python3", "k" * 100, "l" * 150])
ENTRIES = st.lists(
    st.tuples(
        NAMES,
        # Not AREGTYPE ("\0"): tarfile takes such a member for a folder when the first 100
        # characters of its long name end in "/" (test_each_type_flag_names_its_kind).
        st.sampled_from(sorted(set(KINDS) - {tarfile.AREGTYPE})),
        st.binary(max_size=1300),
        st.sampled_from([0o644, 0o755, 0o4755, 0o777, 0]),
        LINKS,
    ),
    max_size=5,
)


def tarfile_archive(entries: list[tuple[str, bytes, bytes, int, str]], fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as archive:
        for name, kind, data, mode, link in entries:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, mode
            carries = kind in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
            info.size = len(data) if carries else 0
            if kind in (tarfile.LNKTYPE, tarfile.SYMTYPE):
                info.linkname = link
            archive.addfile(info, io.BytesIO(data) if carries else None)
    return out.getvalue()


def as_tarfile_reads(data: bytes) -> list[Member]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        out = []
        for info in archive:
            content = archive.extractfile(info) if info.isreg() else None
            body = content.read() if content else b""
            out.append((info.name, KINDS[info.type], info.size, info.mode, info.linkname, body))
        return out


@settings(max_examples=60, deadline=None, derandomize=True)
@given(ENTRIES, st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
def test_members_read_as_tarfile_reads_them(
    entries: list[tuple[str, bytes, bytes, int, str]], fmt: int
) -> None:
    try:
        data = tarfile_archive(entries, fmt)
    except ValueError:  # a name ustar cannot hold
        return
    ours = read_all(data)
    expected = as_tarfile_reads(data)
    # tarfile drops a folder's trailing slash; the tree layer strips it too.
    assert [(m[0].rstrip("/"), *m[1:]) for m in ours] == [
        (m[0].rstrip("/"), *m[1:]) for m in expected
    ]
    if entries:  # cut anywhere before the end-of-archive block: refused, never shorter
        members_end = len(data.rstrip(b"\0"))  # at most where the members end
        for cut in sorted({0, 1, BLOCK - 1, BLOCK, members_end // 2, members_end - 1}):
            if 0 < cut < members_end:
                refused(data[:cut], "truncated")


# -- numbers, checksums and types --------------------------------------------------------

#: tarfile's own reading of a number field (not in its public API, nor typeshed).
NTI: Callable[[bytes], int] = tarfile.nti  # type: ignore[attr-defined]
FIELDS = st.one_of(
    st.binary(min_size=1, max_size=12).map(lambda b: b"\x80" + b),
    st.binary(min_size=1, max_size=12).map(lambda b: b"\xff" + b),
    st.lists(st.sampled_from(b"01234567789 \0+-_xX\t"), min_size=1, max_size=12).map(bytes),
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(FIELDS)
def test_numbers_read_as_tarfile_reads_them(field: bytes) -> None:
    try:
        expected = NTI(field)
    except tarfile.HeaderError:
        with pytest.raises(ArchiveError, match=r"^size: a malformed tar header$"):
            _number(field, "size")
    else:
        assert _number(field, "size") == expected


def test_base256_sizes_and_negative_sizes() -> None:
    data = bytes(range(256)) * 3
    field = b"\x80" + len(data).to_bytes(11, "big")
    assert read_all(member(data, size=field) + END)[0][5] == data
    refused(header(size=b"\xff" * 12) + END, "negative size")


def test_each_type_flag_names_its_kind() -> None:
    for flag, kind in TYPES.items():
        assert read_all(header(name=b"m", typeflag=flag) + END)[0][1] == kind
    for flag in (b"0", b"\0", b"7"):  # old tars mark folders by a trailing slash only
        assert read_all(header(name=b"d/", typeflag=flag) + END)[0][1] == "dir"
    refused(header(name=b"m", typeflag=b"S") + END, r"^'m': an unsupported tar member type b'S'$")
    # A high type flag counts in a signed checksum like any other byte.
    refused(header(typeflag=b"\x80", signed=True) + END, "an unsupported tar member type")


def test_checksums_signed_and_unsigned_accepted_any_other_refused() -> None:
    name = b"\x7f\x80\xfe\xff-high-bytes"
    for signed in (False, True):
        assert read_all(header(name=name, signed=signed) + END)[0][0].startswith("\x7f")
        for delta in (1, -1, 256):
            refused(header(name=name, signed=signed, checksum_delta=delta) + END, "bad checksum")
    one_high = header(name=b"\x80", signed=True)  # signed differs from unsigned by 256
    assert read_all(one_high + END)[0][0] == "\udc80"
    refused(header(name=b"\x7f", checksum_delta=-256) + END, "bad checksum")


def with_checksum(block: bytearray, field: bytes = b"%06o\0 ") -> bytes:
    """The block with its checksum (counted over the field as spaces) in ``field``'s form."""
    block[148:156] = b" " * 8
    block[148:156] = field % sum(block)
    return bytes(block)


def test_checksums_of_six_significant_digits_and_of_eight_digits_unterminated() -> None:
    full = header(name=b"\xff" * 100, typeflag=b"2", linkname=b"\xfe" * 100)
    assert int(full[148:154], 8) >= 0o100000
    assert read_all(full + END)[0][4] == "\udcfe" * 100
    eight = with_checksum(bytearray(header()), b"%08o")
    assert eight[148:149] == b"0" and eight[155:156] != b"\0"
    assert read_all(eight + END)[0][0] == "f"


def test_malformed_number_fields_are_named() -> None:
    refused(header(size=b"12x45678901\0") + END, r"^t.tar: a malformed tar header$")
    refused(header(mode=b"07z5\0\0\0\0") + END, r"^f: a malformed tar header$")
    bad_checksum_field = bytearray(header())
    bad_checksum_field[148:156] = b"12x4\0   "
    refused(bytes(bad_checksum_field) + END, r"^t.tar: a malformed tar header$")


def test_modes_in_base256_and_in_eight_digits_unterminated() -> None:
    assert read_all(header(mode=b"\x80" + (0o755).to_bytes(7, "big")) + END)[0][3] == 0o755
    unterminated = bytearray(header(mode=b"00000644"))
    unterminated[108:116] = b"0001750\0"  # the owner's id follows at once
    assert read_all(with_checksum(unterminated) + END)[0][3] == 0o644


def test_mode_and_link_fields() -> None:
    got = read_all(header(name=b"l", typeflag=b"2", mode=b"0000755\0", linkname=b"../t") + END)
    assert got == [("l", "symlink", 0, 0o755, "../t", b"")]


def test_ustar_prefix_joins_only_under_the_ustar_magic() -> None:
    assert read_all(header(name=b"n", prefix=b"a/b") + END)[0][0] == "a/b/n"
    assert read_all(header(name=b"n", prefix=b"a/b", magic=bytes(8)) + END)[0][0] == "n"
    assert read_all(header(name=b"n") + END)[0][0] == "n"
    assert read_all(header(name=b"n", prefix=b"X") + END)[0][0] == "X/n"
    # The 12 bytes after the prefix are padding, whatever they hold.
    padded = bytearray(header(name=b"n", prefix=b"p" * 155))
    padded[500:512] = b"garbage-here"
    assert read_all(with_checksum(padded) + END)[0][0] == "p" * 155 + "/n"
    padded[345:500] = bytes(155)
    assert read_all(with_checksum(padded) + END)[0][0] == "n"


# -- data: read in parts, skipped when unread, none for members that carry none -----------


def test_reads_in_parts_and_skips_what_is_not_read() -> None:
    big = bytes(range(251)) * 10_000  # over 2 MiB: skipped in several reads
    data = member(b"0123456789", name=b"a") + member(big, name=b"big") + member(b"z", name=b"c")
    reader = TarReader(io.BytesIO(data + END), "t.tar")
    headers = reader.headers()
    assert next(headers).name == "a"
    assert reader.read(0) == b""
    assert reader.read(3) == b"012"
    assert reader.read(100) == b"3456789"
    assert reader.read() == b""
    assert next(headers).name == "big"
    assert reader.read(5) == big[:5]
    c = next(headers)
    assert (c.name, reader.read()) == ("c", b"z")
    assert list(headers) == []


def test_only_regular_files_carry_data_whatever_the_size_field() -> None:
    link = header(name=b"l", typeflag=b"2", size=600, linkname=b"t")
    got = read_all(link + member(b"x", name=b"after") + END)
    assert got == [("l", "symlink", 600, 0o644, "t", b""), ("after", "file", 1, 0o644, "", b"x")]


# -- long names and PAX ------------------------------------------------------------------


def test_gnu_long_names_and_links_apply_to_the_next_member_only() -> None:
    long_name, long_link = b"n" * 700, b"k" * 600
    data = meta(b"L", long_name) + meta(b"K", long_link) + header(name=b"short", typeflag=b"2")
    data += header(name=b"plain", linkname=b"t", typeflag=b"2")
    got = read_all(data + END)
    assert [(m[0], m[4]) for m in got] == [("n" * 700, "k" * 600), ("plain", "t")]


def test_pax_overrides_name_link_and_size() -> None:
    records = pax_record("path", b"p" * 300) + pax_record("linkpath", b"\xffraw")
    records += pax_record("size", b"3") + pax_record("mtime", b"1.5")
    data = meta(b"x", records + bytes(7)) + header(name=b"ignored", size=99) + b"abc"
    data += bytes(BLOCK - 3) + member(b"q", name=b"next")
    got = read_all(data + END)
    assert got[0] == ("p" * 300, "file", 3, 0o644, "\udcffraw", b"abc")
    assert got[1] == ("next", "file", 1, 0o644, "", b"q")


def test_pax_keys_and_values_that_are_not_utf8_are_read_as_bytes() -> None:
    records = b"10 \xffkey=v\n" + pax_record("path", b"p\xfe")
    assert read_all(meta(b"x", records) + header() + END)[0][0] == "p\udcfe"


def test_a_global_pax_header_describes_no_member() -> None:
    data = meta(b"g", pax_record("comment", b"hello")) + member(b"x", name=b"f")
    assert read_all(data + END) == [("f", "file", 1, 0o644, "", b"x")]


@pytest.mark.parametrize(
    "records",
    [
        b"x path=a\n",  # not a number
        b"+12 path=ab\n",  # a sign is not a digit
        b"0" * 19 + b"31 path=abc\n",  # 21 digits: past any real length
        b"99 path=a\n",  # runs past the data
        b"11 path=ab!",  # does not end its line
        b"9 pathab\n",  # no '='
        b"0 path=a\n",  # no length
        b"\n",  # no space at all
    ],
)
def test_malformed_pax_records_are_refused(records: bytes) -> None:
    refused(meta(b"x", records) + header() + END, r"^t.tar: a malformed PAX header$")


def test_pax_length_of_twenty_digits_is_read() -> None:
    record = b"0" * 18 + b"40 path=abcdefghijklm\n"
    assert len(record) == 40
    assert read_all(meta(b"x", record) + header() + END)[0][0] == "abcdefghijklm"


@pytest.mark.parametrize("size", [b"12a", b"\xd9\xa1\xd9\xa2", b"-1", b" 1"])
def test_a_pax_size_that_is_not_a_number_is_refused(size: bytes) -> None:
    message = f"'f': a PAX size that is not a number ({size.decode()!r})"
    refused(meta(b"x", pax_record("size", size)) + header() + END, f"^{re.escape(message)}$")


def test_a_long_pax_size_is_quoted_in_part() -> None:
    size = b"9" * 30 + b"z"
    with pytest.raises(ArchiveError) as caught:
        read_all(meta(b"x", pax_record("size", size)) + header() + END)
    assert str(caught.value) == f"'f': a PAX size that is not a number ({'9' * 20!r})"


def test_metadata_is_bounded() -> None:
    at_limit = b"n" * MAX_META
    assert read_all(meta(b"L", at_limit) + header() + END)[0][0] == "n" * MAX_META
    for flag in (b"L", b"K", b"x", b"g"):
        over = header(name=b"@", typeflag=flag, size=MAX_META + 1)
        message = f"claims {MAX_META + 1} bytes of long name or PAX data \\(at most {MAX_META}"
        refused(over + bytes(MAX_META + 1024) + END, message)


# -- the end of the archive --------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (member(b"abc"), r"^t.tar: a truncated archive \(no end-of-archive block\)$"),
        (member(b"abc") + bytes(100), r"^t.tar: a truncated archive \(no end-of-archive block\)$"),
        (header(size=700) + b"x" * 600, r"^t.tar: a truncated archive$"),
        (header()[:300], r"^t.tar: a truncated archive \(no end-of-archive block\)$"),
        (meta(b"L", b"long") + END, "no end-of-archive block"),
        (meta(b"K", b"link") + END, "no end-of-archive block"),
        (meta(b"x", pax_record("path", b"p")) + END, "no end-of-archive block"),
        (meta(b"L", b"l" * 600)[: BLOCK + 100], r"^t.tar: a truncated archive$"),
        (header(name=b"@", typeflag=b"L", size=10) + b"0123456789", r"truncated archive$"),
    ],
)
def test_truncation_is_refused(data: bytes, match: str) -> None:
    refused(data, match)


def test_what_follows_the_end_block_is_read_up_to_a_bound() -> None:
    one = member(b"x")
    assert len(read_all(one + bytes(BLOCK) + bytes(MAX_TRAILER))) == 1
    refused(
        one + bytes(BLOCK) + bytes(MAX_TRAILER + 1),
        rf"^t.tar: over {MAX_TRAILER >> 20} MiB after the end-of-archive block$",
    )
    stream = io.BytesIO(one + END + b"trailing")
    reader = TarReader(stream, "t.tar")
    assert [h.name for h in reader.headers()] == ["f"]
    assert stream.read() == b""  # read to the end, so a compressed stream's checksum is checked


# -- reading a stream a window at a time --------------------------------------------------

OPS = st.lists(
    st.tuples(st.sampled_from(["read", "block", "skip"]), st.integers(0, 2_000)), max_size=40
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.integers(0, 6_000), OPS, st.booleans())
def test_a_windowed_stream_reads_and_skips_as_the_stream_does(
    size: int, ops: list[tuple[str, int]], ahead: bool
) -> None:
    """Reads, header blocks and skips of any size, across windows smaller and larger
    than them, read ahead on a thread or not, give the stream's bytes in order."""
    data = bytes(i % 251 for i in range(size))  # any byte out of place shows
    with patch.object(Windowed, "WINDOW", 500):  # reads cross windows
        windowed = Windowed(io.BytesIO(data), ahead=ahead)
    model = io.BytesIO(data)
    try:
        for op, n in ops:
            if op == "skip":
                left = len(data) - model.tell()
                assert windowed.skip(n) == (n <= left)
                model.seek(min(n, left), io.SEEK_CUR)
            else:
                got = windowed.read(n) if op == "read" else windowed.block(n)
                assert bytes(got) == model.read(n)
    finally:
        windowed.close()


def test_reading_ahead_stops_its_thread_on_close_and_raises_where_read() -> None:
    class Failing(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            if self.tell() >= 1_000:
                raise EOFError("the stream broke")
            return super().read(n)

    def readers() -> int:
        return sum(t.name.startswith("casstore-read") for t in threading.enumerate())

    before = readers()
    with patch.object(Windowed, "WINDOW", 400):
        stopped = Windowed(io.BytesIO(bytes(5_000)), ahead=True)
        failing = Windowed(Failing(bytes(5_000)), ahead=True)
    assert bytes(stopped.read(1_000)) == bytes(1_000)
    assert readers() > before  # reading on
    stopped.close()  # in the middle: its thread stops
    assert readers() == before
    assert bytes(failing.read(1_000)) == bytes(1_000)  # read before the break
    with pytest.raises(EOFError, match="the stream broke"):
        failing.read(1_000)  # past the windows read before the break
    failing.close()
    assert readers() == before
