"""A folder read as a snapshot's members: names sorted, folder by folder, files read
whole with one call (a file object, a path object and a stat a file cost a third of
a folder's ingest), a store inside left out."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from casstore.errors import ArchiveError
from casstore.format.layout import MARKER
from casstore.trees.members import EXECUTABLE, SPECIAL, Counter, Member

#: A folder's files up to this size are read whole, with one call; larger ones a piece at
#: a time. (Up to VIEWED_MEMBER_MAX, as a tar's, a folder like /usr/lib peaked at 260 MB,
#: not 190: unlike a map's pages, a large file read whole stays in memory until the last
#: of its chunks is stored.)
FOLDER_FILE_WHOLE = 4 << 20


def folder_members(root: Path, counter: Counter) -> Iterator[Member]:
    """A folder's members, folder by folder, names sorted; files up to
    ``FOLDER_FILE_WHOLE`` come whole, as a tar's do."""
    folders = [(os.fspath(root), "")]
    while folders:
        folder, rel_folder = folders.pop()
        with os.scandir(folder) as listing:  # an unreadable folder is an error, not skipped
            entries = sorted(listing, key=lambda entry: entry.name)
        # A store inside the folder is left out, as git leaves out .git: `cas put --tree .`
        # beside the embedded store .cas/ would otherwise snapshot the store itself.
        subfolders = [
            e
            for e in entries
            if e.is_dir(follow_symlinks=False) and not os.path.isfile(os.path.join(e, MARKER))
        ]
        others = [e for e in entries if not e.is_dir(follow_symlinks=False)]
        if not others and not subfolders and rel_folder:
            yield Member(rel_folder[:-1], "dir")
        for entry in others:
            rel = rel_folder + entry.name
            if entry.is_symlink():
                yield Member(rel, "symlink", target=os.readlink(entry.path))
            elif entry.is_file(follow_symlinks=False):
                yield from _folder_file(entry.path, rel, counter)
            else:
                raise ArchiveError(f"{rel!r}: {SPECIAL}")
        folders.extend((e.path, f"{rel_folder}{e.name}/") for e in reversed(subfolders))


def _folder_file(path: str, rel: str, counter: Counter) -> Iterator[Member]:
    # O_NONBLOCK: a file replaced by a FIFO meanwhile is refused below, not waited on.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ArchiveError(f"{rel!r}: {SPECIAL}")
        size, executable = info.st_size, bool(info.st_mode & EXECUTABLE)
        counter.add(size, rel)
        if size > FOLDER_FILE_WHOLE:  # read a piece at a time by whoever stores it
            with open(fd, "rb", closefd=False) as content:
                yield Member(rel, "file", size, executable, content=content)
            return
        pieces, got = [], 0
        while got < size and (piece := os.read(fd, size - got)):
            pieces.append(piece)
            got += len(piece)
        if got != size:  # what was there when it was looked at, or an error; never less
            raise ArchiveError(f"{rel!r}: changed while being read (it had {size} bytes)")
    finally:
        os.close(fd)
    data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    yield Member(rel, "file", size, executable, data=memoryview(data))
