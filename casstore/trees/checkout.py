"""Trees out: a folder, or a deterministic archive (:mod:`casstore.trees.archive_out`).

A folder is written whole into a new temp folder beside the destination and
renamed into place at the end, so a failure (a corrupt blob, a full disk)
leaves no partial folder, and ``force`` replaces a folder's contents without
leaving stray files. Safety comes from never writing through a link, not from
refusing links: the temp folder is new, folders and files are created fresh
(``O_EXCL | O_NOFOLLOW``) before any symlink exists, and symlinks are made
last, with their targets verbatim wherever they point. Files get the mode the
umask gives (0644, or 0755 when executable, under umask 022).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from casstore.errors import ArchiveError, DestinationError
from casstore.fileio import write_all
from casstore.format import tree
from casstore.format.objects import IO_SIZE
from casstore.format.tree import Entry
from casstore.trees.archive_out import FORMATS, write_archive_file
from casstore.trees.readahead import DAMAGE, in_file, is_small, with_path

if TYPE_CHECKING:
    from casstore.trees.protocol import ObjectReader

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


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
    if name.endswith((".tar.bz2", ".tbz2", ".tar.xz", ".txz")):
        # Read by put --tree, never written: a folder of that name would surprise.
        raise ArchiveError(
            f"{dest}: bzip2 and xz archives are read, not written: "
            "name it .tar, .tar.gz, .tar.zst or .zip"
        )
    return "dir"


def load(store: ObjectReader, digest: str) -> list[Entry]:
    """The entries of a stored tree: the one place a stored tree record is read, within
    the store's ``[tree]`` limits (checked before the record is read)."""
    return tree.decode(store.get_record(digest), digest, store.tree_limits)


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
    # Absolute, so that "." or "sub/.." name the folder itself (it is renamed into place).
    target = Path(os.path.abspath(dest))
    if fmt == "dir":
        to_folder(store, entries, target, force=force)
    else:
        if (target.exists() or target.is_symlink()) and not force:
            raise DestinationError(f"{dest} exists: pass --force to replace it")
        write_archive_file(store, entries, target, fmt, level)
    return fmt


def to_folder(store: ObjectReader, entries: list[Entry], dest: Path, *, force: bool) -> None:
    """Write ``entries`` as the folder ``dest``: all of it, or nothing."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise DestinationError(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise DestinationError(f"{dest} is not empty: pass --force to replace its contents")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        os.chmod(staging, 0o777 & ~_umask())
        _write_entries(store, entries, str(staging))
        _swap(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    from casstore.fileio import umask

    return umask()


def _write_entries(store: ObjectReader, entries: list[Entry], root: str) -> None:
    folders = {""}
    for entry in entries:
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            folders.add("/".join(parts[:depth]))
        if entry.type == "dir":
            folders.add(entry.path)
    for folder in sorted(folders):  # parents first; all are new, none is a link
        if folder:
            os.mkdir(os.path.join(root, folder))
    _write_files(store, entries, root)
    for entry in entries:  # links last: nothing is ever written through one
        if entry.type == "symlink":
            os.symlink(entry.target, os.path.join(root, entry.path))


def _write_files(store: ObjectReader, entries: list[Entry], root: str) -> None:
    """Every file: small ones on the threads that read them, in the order the store
    reads them fastest (a folder's files may be written in any order), large ones
    meanwhile on another thread, streamed (their decoding leaves the interpreter free)."""
    paths: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.type == "file":
            paths.setdefault(entry.digest, []).append(entry)
    large = [(digest, same) for digest, same in paths.items() if not is_small(same[0])]
    small = [digest for digest, same in paths.items() if is_small(same[0])]

    def write(digest: str, data: bytes) -> None:
        for entry in paths[digest]:
            fd = _create(root, entry)
            try:
                write_all(fd, [data])  # no file object: two calls, not ten
            finally:
                os.close(fd)

    stop = threading.Event()
    with ThreadPoolExecutor(1, thread_name_prefix="casstore-large") as pool:
        streaming = pool.submit(_write_large, store, large, root, stop)
        try:
            store.read_each(small, write)
            streaming.result()
        except BaseException as exc:
            stop.set()  # the large files stop too (the folder is thrown away)
            if isinstance(exc, DAMAGE):
                raise with_path(exc, {d: same[0].path for d, same in paths.items()}) from None
            raise


def _write_large(
    store: ObjectReader, large: list[tuple[str, list[Entry]]], root: str, stop: threading.Event
) -> None:
    for digest, same in large:
        for entry in same:
            fd = _create(root, entry)
            try:
                with store.open(digest) as reader:
                    while piece := reader.read(IO_SIZE):
                        if stop.is_set():
                            return
                        write_all(fd, [piece])
            except DAMAGE as exc:  # a chunk's digest, maybe: the file is named here
                raise in_file(exc, entry.path) from None
            finally:
                os.close(fd)


def _create(root: str, entry: Entry) -> int:
    mode = 0o777 if entry.executable else 0o666
    return os.open(os.path.join(root, entry.path), _CREATE, mode)


def _swap(staging: Path, dest: Path) -> None:
    """Put the finished folder in place: a rename, after the old one moved aside."""
    if not dest.exists():
        os.rename(staging, dest)
        return
    old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
    os.rmdir(old)
    os.rename(dest, old)
    try:
        os.rename(staging, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)
