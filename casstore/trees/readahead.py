"""Small files read ahead of whoever writes them out (a folder, a tar, a zip).

Reading a small packed file is decompressing its block and re-hashing it, both
of which release the GIL; writing it is a system call, which does too. Two
reader threads keep the writer fed, so writing a tree costs about what writing
its bytes costs, not that plus decoding them one after another.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from casstore.format.tree import Entry

if TYPE_CHECKING:
    from casstore.trees.protocol import ObjectReader

#: Files up to this size are read whole, verified, ahead of the writer; larger ones are
#: streamed (and verified as they are) by the writer itself.
SMALL_FILE = 4 << 20
#: Small files read ahead of the writer, at most (bounds memory: READ_AHEAD x SMALL_FILE).
READ_AHEAD = 32


def is_small(entry: Entry) -> bool:
    return entry.type == "file" and entry.size <= SMALL_FILE


def small_files(store: ObjectReader, entries: list[Entry]) -> Generator[bytes, None, None]:
    """The verified content of each small file among ``entries``, in their order."""
    small = [e for e in entries if is_small(e)]
    with ThreadPoolExecutor(2, thread_name_prefix="casstore-read") as pool:
        ahead: deque[Future[bytes]] = deque()
        try:
            for entry in small:
                ahead.append(pool.submit(store.get_bytes, entry.digest))
                if len(ahead) > READ_AHEAD:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
        finally:
            for pending in ahead:  # the writer stopped (an error): read no further
                pending.cancel()
