"""Trees out as deterministic archives: zip, tar, tar.gz, tar.zst.

Members in entry order (sorted), mtime 1980-01-01, uid and gid 0, no owner
names, mode 0644 (0755 for executables and folders), symlinks with their
targets verbatim: one tree always gives the same bytes, and ingesting the
archive gives the tree back. Blobs are streamed from the store, verified as
they are read; an archive file is written through a temp file and appears
only once every blob verified. On a stream that cannot be taken back
(stdout), each blob is verified before its first byte is written, and an error
ends the stream so that no reader takes what went out for the whole archive.
"""

from __future__ import annotations

import contextlib
import io
import re
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from casstore.errors import ArchiveError
from casstore.fileio import atomic_write, write_all
from casstore.format.tree import Entry
from casstore.trees import tarwrite
from casstore.trees.readahead import DAMAGE, SMALL_FILE, file_contents, in_file

if TYPE_CHECKING:
    from casstore.trees.protocol import ObjectReader

FORMATS = ("dir", "zip", "tar", "tar.gz", "tar.zst")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
#: Members are written this many bytes at a time...
WRITE_BYTES = 1 << 20
#: ...and a file read as its chunks (larger than ``SMALL_FILE``) this many, so that
#: nothing but such a file is ever cut between two writes.
STREAM_BYTES = 16 << 20
#: Deflate level of zip members: zips are written for tools to read, not to keep.
ZIP_LEVEL = 1
#: Names that Windows extractors read as a path climbing out or a drive.
_UNSAFE_IN_ZIP = re.compile(r"\\|^[A-Za-z]:|/[A-Za-z]:")


def write_archive_file(
    store: ObjectReader, entries: list[Entry], target: Path, fmt: str, level: int
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, durable=False) as out:
        write_archive(store, entries, out, fmt, level)


def write_archive(
    store: ObjectReader,
    entries: list[Entry],
    out: IO[bytes],
    fmt: str,
    level: int = 3,
    *,
    verify_first: bool = False,
) -> None:
    """Write ``entries`` to ``out`` as ``fmt``; ``verify_first`` for a stream whose bytes
    cannot be taken back (each blob is then verified before any of it is written)."""
    if fmt == "zip":
        _write_zip(store, entries, out, verify_first)
    elif fmt == "tar.gz":
        import gzip

        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="", compresslevel=6) as gz:
            _write_tar(store, entries, cast(IO[bytes], gz), verify_first)
    elif fmt == "tar.zst":
        import zstandard

        with zstandard.ZstdCompressor(level=level).stream_writer(out, closefd=False) as zst:
            _write_tar(store, entries, zst, verify_first)
    elif fmt == "tar":
        _write_tar(store, entries, out, verify_first)
    else:
        raise ArchiveError(f"{fmt!r} is not an archive format: use zip, tar, tar.gz or tar.zst")


def _content(store: ObjectReader, entry: Entry, verify_first: bool) -> IO[bytes]:
    """A stream of a large blob; verified at its end, or (``verify_first``) before it starts."""
    if not verify_first:
        return cast(IO[bytes], store.open(entry.digest))
    spool = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115 - caller closes
    with store.open(entry.digest) as reader:
        reader.copy_to(cast(IO[bytes], spool))
    spool.seek(0)
    return cast(IO[bytes], spool)


def _write_tar(
    store: ObjectReader, entries: list[Entry], out: IO[bytes], verify_first: bool
) -> None:
    """Members gathered and written a MiB at a time (gathered by the kernel from a file
    or a pipe, joined without the interpreter's lock for a compressor); large files
    not stored as chunks streamed between them."""
    write = _gathering(out)
    try:
        with file_contents(store, entries, chunks=not verify_first) as contents:
            pieces: list[bytes] = []
            size = 0
            for entry in entries:
                pieces.append(_tar_header(entry))
                if entry.type != "file":
                    continue
                content = next(contents)
                if content is None:
                    write(pieces)
                    pieces, size = [], 0
                    _write_large(store, entry, out, verify_first)
                    continue
                for piece in content:
                    pieces.append(piece)
                    size += len(piece)
                    if size >= STREAM_BYTES:  # only within a file read as its chunks
                        write(pieces)
                        pieces, size = [], 0
                pieces.append(tarwrite.padding(entry.size))
                if size >= WRITE_BYTES:  # whole members, so a stream that fails stops between two
                    write(pieces)
                    pieces, size = [], 0
            write(pieces)
    except BaseException as exc:
        if verify_first:  # part of it is out already: make sure it does not pass for whole
            with contextlib.suppress(OSError, ValueError):
                out.write(tarwrite.stopped(f"cas: the archive stops here ({type(exc).__name__})"))
        raise
    tarwrite.end(out)


def _gathering(out: IO[bytes]) -> Callable[[list[bytes]], None]:
    """How to write a list of pieces to ``out``: straight to its descriptor when it is a
    plain file or pipe (after what ``out`` holds), else joined."""
    gather = isinstance(out, (io.BufferedWriter, io.BufferedRandom, io.FileIO))

    def write(pieces: list[bytes]) -> None:
        if gather:
            out.flush()
            write_all(out.fileno(), pieces)
        else:  # a compressor's stream
            out.write(b"".join(pieces))

    return write


def _large_pieces(store: ObjectReader, entry: Entry, verify_first: bool) -> Iterator[bytes]:
    """A large file not stored as chunks, a MiB at a time (see :func:`_content`); damage
    named by the file (the store names its object, or one of its chunks)."""
    try:
        with _content(store, entry, verify_first) as content:
            while piece := content.read(1 << 20):
                yield piece
    except DAMAGE as exc:
        raise in_file(exc, entry.path) from None


def _write_large(store: ObjectReader, entry: Entry, out: IO[bytes], verify_first: bool) -> None:
    written = 0
    for piece in _large_pieces(store, entry, verify_first):
        out.write(piece)
        written += len(piece)
    if written != entry.size:
        raise ArchiveError(f"{entry.path!r}: not the size its tree records")
    out.write(tarwrite.padding(entry.size))


def _tar_header(entry: Entry) -> bytes:
    if entry.type == "dir":
        return tarwrite.header(entry.path, kind="dir", mode=0o755)
    if entry.type == "symlink":
        return tarwrite.header(entry.path, kind="symlink", mode=0o777, target=entry.target)
    mode = 0o755 if entry.executable else 0o644
    return tarwrite.header(entry.path, kind="file", size=entry.size, mode=mode)


def _zip_name(entry: Entry) -> str:
    if _UNSAFE_IN_ZIP.search(entry.path):
        raise ArchiveError(
            f"{entry.path!r}: a name with a backslash or a drive letter cannot be written "
            "safely into a zip (Windows extractors read it as a path); write a tar instead"
        )
    return entry.path


def _write_zip(
    store: ObjectReader, entries: list[Entry], out: IO[bytes], verify_first: bool
) -> None:
    names = [_zip_name(entry) for entry in entries]  # refused before anything is written
    with (
        file_contents(store, entries, chunks=not verify_first) as contents,
        zipfile.ZipFile(
            out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL
        ) as archive,
    ):
        try:
            _zip_members(store, entries, names, archive, contents, verify_first)
        except BaseException:
            if verify_first:
                # Part of it is out already: no central directory, so that no reader
                # takes it for whole (zipfile writes one on close unless told nothing
                # was added; the attribute is named so in 3.11 to 3.13).
                setattr(archive, "_didModify", False)  # noqa: B010
            raise


def _zip_members(
    store: ObjectReader,
    entries: list[Entry],
    names: list[str],
    archive: zipfile.ZipFile,
    contents: Iterator[Iterable[bytes] | None],
    verify_first: bool,
) -> None:
    for entry, name in zip(entries, names, strict=True):
        if entry.type == "dir":
            info = zipfile.ZipInfo(name + "/", _ZIP_DATE)
            info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
            archive.writestr(info, b"")
            continue
        info = zipfile.ZipInfo(name, _ZIP_DATE)
        info.create_system = 3  # unix, so the mode bits are read back
        info.compress_type = zipfile.ZIP_DEFLATED
        # Members take their own level, not the archive's (named so in 3.11 and 3.12).
        setattr(info, "_compresslevel", ZIP_LEVEL)  # noqa: B010
        if entry.type == "symlink":
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, entry.target.encode("utf-8", "surrogateescape"))
            continue
        info.external_attr = (stat.S_IFREG | (0o755 if entry.executable else 0o644)) << 16
        content = next(contents)
        if content is not None and entry.size <= SMALL_FILE:
            archive.writestr(info, b"".join(content))
            continue
        with archive.open(info, "w", force_zip64=entry.size > (1 << 31)) as dst:
            if content is not None:
                for piece in content:
                    dst.write(piece)
                continue
            for piece in _large_pieces(store, entry, verify_first):
                dst.write(piece)
