"""What a snapshot source is read as: members, each a file, folder or symlink, and the
count that bounds what they unpack to."""

from __future__ import annotations

import stat
from dataclasses import dataclass
from typing import IO

from casstore.errors import ArchiveError
from casstore.format.tree import Kind

EXECUTABLE = stat.S_IXUSR
#: What is said of a member that is not a file, folder or symlink, whatever the source.
SPECIAL = "a device, FIFO or other special file is not allowed"


@dataclass
class Member:
    path: str
    type: Kind
    size: int = 0
    executable: bool = False
    target: str = ""
    #: For files: the content, to be read before the next member is asked for.
    content: IO[bytes] | None = None
    #: For files, instead of ``content`` when having it whole costs no copy (a view
    #: of a tar, mapped or read a window at a time): the whole content.
    data: memoryview | None = None
    #: For tar hard links: the path of the earlier member with the content.
    hardlink: str = ""


class Counter:
    """Counts what members unpack to, and stops past the bound."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0

    def add(self, size: int, member: str) -> None:
        self.total += size
        if self.total > self.limit:
            raise ArchiveError(
                f"{member!r}: the snapshot unpacks to more than {self.limit} bytes (a "
                "decompression bomb?); if it is expected, raise [tree] max_bytes in store.toml"
            )
