"""Trees out: a folder, or a deterministic zip, tar, tar.gz or tar.zst.

Every blob is verified as it is written. Archives have fixed timestamps,
owners and modes and sorted members, so one tree always gives the same bytes,
and ingesting the archive again gives the same tree. Nothing is written
outside the destination: a symlink that would escape it is refused, and no
file is ever written through a symlink.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from casstore.errors import ArchiveError, DestinationError
from casstore.fileio import atomic_write, file_mode
from casstore.format import tree
from casstore.format.tree import Entry

if TYPE_CHECKING:
    from casstore.trees.protocol import ObjectReader

FORMATS = ("dir", "zip", "tar", "tar.gz", "tar.zst")
#: 1980-01-01, the earliest time a zip can hold; used for tar too.
EPOCH = 315532800
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def format_for(dest: str | os.PathLike[str], given: str | None) -> str:
    if given:
        if given not in FORMATS:
            raise ArchiveError(f"unknown format {given!r}: use one of {', '.join(FORMATS)}")
        return given
    name = str(dest).lower()
    for suffix, fmt in (
        (".tar.gz", "tar.gz"),
        (".tgz", "tar.gz"),
        (".tar.zst", "tar.zst"),
        (".tzst", "tar.zst"),
        (".tar", "tar"),
        (".zip", "zip"),
    ):
        if name.endswith(suffix):
            return fmt
    return "dir"


def load(store: ObjectReader, digest: str) -> list[Entry]:
    return tree.decode(store.get_bytes(digest), digest)


def get_tree(
    store: ObjectReader,
    digest: str,
    dest: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    force: bool = False,
    level: int = 3,
) -> str:
    """Materialise tree ``digest`` at ``dest``; returns the format used."""
    fmt = format_for(dest, fmt)
    entries = load(store, digest)
    target = Path(dest)
    if fmt == "dir":
        _to_folder(store, entries, target, force)
    else:
        if target.exists() and not force:
            raise DestinationError(f"{dest} exists: pass --force to replace it")
        _to_archive(store, entries, target, fmt, level)
    return fmt


def _to_folder(store: ObjectReader, entries: list[Entry], root: Path, force: bool) -> None:
    if root.exists() and not root.is_dir():
        raise DestinationError(f"{root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise DestinationError(f"{root} is not empty: pass --force to write into it")
    root.mkdir(parents=True, exist_ok=True)
    base = root.resolve()
    for entry in entries:
        path = base / entry.path
        parent = path.parent
        # Refuse to go through anything that is not a real folder inside root.
        _make_folders(base, parent)
        if entry.type == "dir":
            _make_folders(base, path)
        elif entry.type == "symlink":
            _check_link(base, path, entry.target)
            if path.is_symlink() or path.exists():
                path.unlink()
            os.symlink(entry.target, path)
        else:
            if path.is_symlink():
                path.unlink()  # never write through a link, even one we made
            with (
                atomic_write(path, durable=False, mode=file_mode(executable=entry.executable)) as f,
                store.open(entry.digest) as reader,
            ):
                reader.copy_to(f)


def _make_folders(base: Path, folder: Path) -> None:
    rel = folder.relative_to(base)
    current = base
    for part in rel.parts:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            raise ArchiveError(f"{rel}: would be written through a symlink or file")
        if not current.exists():
            current.mkdir()


def _check_link(base: Path, path: Path, target: str) -> None:
    if os.path.isabs(target):
        raise ArchiveError(f"{path.relative_to(base)}: symlink to an absolute path {target!r}")
    resolved = os.path.normpath(os.path.join(path.parent, target))
    if resolved != str(base) and not resolved.startswith(str(base) + os.sep):
        raise ArchiveError(
            f"{path.relative_to(base)}: symlink {target!r} points outside the destination"
        )


def _to_archive(
    store: ObjectReader, entries: list[Entry], target: Path, fmt: str, level: int
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target, durable=False) as out:
        if fmt == "zip":
            _write_zip(store, entries, out)
        elif fmt == "tar.gz":
            import gzip

            with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="", compresslevel=6) as gz:
                _write_tar(store, entries, cast(IO[bytes], gz))
        elif fmt == "tar.zst":
            import zstandard

            with zstandard.ZstdCompressor(level=level).stream_writer(out, closefd=False) as zst:
                _write_tar(store, entries, zst)
        else:
            _write_tar(store, entries, out)


def _write_tar(store: ObjectReader, entries: list[Entry], out: IO[bytes]) -> None:
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
                with _verified(store, entry) as content:
                    archive.addfile(info, content)


@contextlib.contextmanager
def _verified(store: ObjectReader, entry: Entry) -> Iterator[IO[bytes]]:
    """The blob's content, spooled and verified before any of it is used."""
    with tempfile.SpooledTemporaryFile(max_size=16 << 20) as spool:
        with store.open(entry.digest) as reader:
            reader.copy_to(spool)
        spool.seek(0)
        yield cast(IO[bytes], spool)


def _write_zip(store: ObjectReader, entries: list[Entry], out: IO[bytes]) -> None:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for entry in entries:
            if entry.type == "dir":
                info = zipfile.ZipInfo(entry.path + "/", _ZIP_DATE)
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                archive.writestr(info, b"")
                continue
            info = zipfile.ZipInfo(entry.path, _ZIP_DATE)
            info.create_system = 3  # unix, so the mode bits are read back
            info.compress_type = zipfile.ZIP_DEFLATED
            if entry.type == "symlink":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                archive.writestr(info, entry.target.encode("utf-8", "surrogateescape"))
                continue
            info.external_attr = (stat.S_IFREG | (0o755 if entry.executable else 0o644)) << 16
            with (
                _verified(store, entry) as content,
                archive.open(info, "w", force_zip64=entry.size > (1 << 31)) as dst,
            ):
                while piece := content.read(1 << 20):
                    dst.write(piece)
