"""Writing local files so that a reader sees the old content or the new, never a part.

The one place for temp-file-then-rename: store files (objects, packs, refs),
destinations of ``cas get``, bundles, sidecars and replay files all go
through :func:`atomic_write` or :func:`temp_file`. Modes follow the umask, as
any file the user creates would (``mkstemp`` alone gives 0600, which another
account of a group sharing a store or a grader could not read).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_umask: int | None = None
_umask_lock = threading.Lock()


def umask() -> int:
    """The process umask (read once: reading it means setting it, briefly)."""
    global _umask
    with _umask_lock:
        if _umask is None:
            _umask = os.umask(0o022)
            os.umask(_umask)
        return _umask


def file_mode(*, executable: bool = False, read_only: bool = False) -> int:
    """The mode a new file gets under the umask: 0644 (0755 executable) under 022.

    ``read_only`` drops the write bits, as git does for immutable objects.
    """
    mode = 0o777 if executable else 0o666
    if read_only:
        mode &= ~0o222
    return mode & ~umask()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename in ``path`` durable: the folder entry itself must reach the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: In the name of every temp file (``.tmp-...``, ``.name.tmp-...``): how gc and fsck
#: recognise what a killed writer left.
TEMP_MARK = ".tmp-"


@contextlib.contextmanager
def temp_file(
    folder: str | os.PathLike[str], prefix: str = TEMP_MARK
) -> Iterator[tuple[BinaryIO, Path]]:
    """A new temp file in ``folder``, open for writing; removed on exit unless the
    caller moved it away (renamed or published it)."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=prefix)
    path = Path(name)
    try:
        with os.fdopen(fd, "w+b") as f:
            yield f, path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    *,
    durable: bool = True,
    mode: int | None = None,
) -> Iterator[BinaryIO]:
    """Write ``path`` through a temp file beside it, renamed into place on success.

    ``durable`` syncs the file before the rename and the folder after it, for
    files whose loss after a crash would break a promise (store files). On an
    error nothing is left behind and the previous ``path``, if any, is intact.
    """
    target = Path(path)
    with temp_file(target.parent, prefix=f".{target.name}{TEMP_MARK}") as (f, tmp):
        yield f
        f.flush()
        if durable:
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode() if mode is None else mode)
        os.replace(tmp, target)
    if durable:
        fsync_dir(target.parent)


#: Pieces one ``writev`` takes (the usual IOV_MAX).
_IOV_MAX = 1024


def write_all(fd: int, pieces: list[bytes]) -> None:
    """Write every piece to ``fd`` in order: gathered by the kernel, not first joined
    into one more copy (an archive of a snapshot is written from its files' contents
    as they were read), however short each write comes back."""
    views = [memoryview(piece) for piece in pieces if piece]
    first = 0
    while first < len(views):
        written = os.writev(fd, views[first : first + _IOV_MAX])
        while written and written >= len(views[first]):
            written -= len(views[first])
            first += 1
        if written:
            views[first] = views[first][written:]
