"""Trees out as deterministic archives: zip, tar, tar.gz, tar.zst.

Members in entry order (sorted), mtime 1980-01-01, uid and gid 0, no owner
names, mode 0644 (0755 for executables and folders), symlinks with their
targets verbatim: one tree always gives the same bytes, and ingesting the
archive gives the tree back. Blobs are streamed from the store, verified as
they are read; an archive file is written through a temp file and appears
only once every blob verified. On a stream that cannot be taken back
(stdout), each blob is verified before its first byte is written.
"""

from __future__ import annotations

import re
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from casstore.errors import ArchiveError
from casstore.fileio import atomic_write
from casstore.format.tree import Entry

if TYPE_CHECKING:
    from casstore.trees.protocol import ObjectReader

FORMATS = ("dir", "zip", "tar", "tar.gz", "tar.zst")
#: 1980-01-01, the earliest time a zip can hold; used for tar too.
EPOCH = 315532800
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
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
    """A stream of the blob; verified at its end, or (``verify_first``) before it starts."""
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
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.mtime = EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if entry.type == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            elif entry.type == "symlink":
                info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, entry.target
                archive.addfile(info)
            else:
                info.size = entry.size
                info.mode = 0o755 if entry.executable else 0o644
                with _content(store, entry, verify_first) as content:
                    archive.addfile(info, content)
                    # The reader verifies at its end: make sure the end was read.
                    if content.read(1):
                        raise ArchiveError(f"{entry.path!r}: longer than its recorded size")


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
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for entry, name in zip(entries, names, strict=True):
            if entry.type == "dir":
                info = zipfile.ZipInfo(name + "/", _ZIP_DATE)
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                archive.writestr(info, b"")
                continue
            info = zipfile.ZipInfo(name, _ZIP_DATE)
            info.create_system = 3  # unix, so the mode bits are read back
            info.compress_type = zipfile.ZIP_DEFLATED
            if entry.type == "symlink":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                archive.writestr(info, entry.target.encode("utf-8", "surrogateescape"))
                continue
            info.external_attr = (stat.S_IFREG | (0o755 if entry.executable else 0o644)) << 16
            with (
                _content(store, entry, verify_first) as content,
                archive.open(info, "w", force_zip64=entry.size > (1 << 31)) as dst,
            ):
                while piece := content.read(1 << 20):
                    dst.write(piece)
