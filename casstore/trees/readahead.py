"""Small files read ahead of whoever writes them out (a folder, a tar, a zip).

Reading a small packed file is decompressing its block and re-hashing it, both
of which release the GIL; writing it is a system call, which does too. Two
reader threads keep the writer fed, so writing a tree costs about what writing
its bytes costs, not that plus decoding them one after another. Files are read
in batches (neighbours, most often from one block), one task each: a task per
file cost more in scheduling than reading a small file does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

from casstore.format.tree import Entry

if TYPE_CHECKING:
    from casstore.trees.protocol import ObjectReader

#: Files up to this size are read whole, verified, ahead of the writer; larger ones are
#: streamed (and verified as they are) by the writer itself.
SMALL_FILE = 4 << 20
#: A batch closes at this many bytes or files, whichever comes first.
BATCH_BYTES = 1 << 20
BATCH_FILES = 64
#: Batches read ahead of the writer, at most (bounds memory: a few MiB each).
READ_AHEAD = 8


def is_small(entry: Entry) -> bool:
    return entry.type == "file" and entry.size <= SMALL_FILE


def _batches(entries: list[Entry]) -> Iterator[list[str]]:
    batch: list[str] = []
    size = 0
    for entry in entries:
        if not is_small(entry):
            continue
        batch.append(entry.digest)
        size += entry.size
        if size >= BATCH_BYTES or len(batch) >= BATCH_FILES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


@contextmanager
def small_files(store: ObjectReader, entries: list[Entry]) -> Iterator[Iterator[bytes]]:
    """The verified content of each small file among ``entries``, in their order.

    A context: leaving it stops the reading and joins the reader threads, never
    left to the garbage collector (a collection inside threading's own
    bookkeeping can deadlock on the join)."""
    reading = _read_ahead(store, entries)
    try:
        yield reading
    finally:
        reading.close()


def _read_ahead(store: ObjectReader, entries: list[Entry]) -> Generator[bytes, None, None]:
    """What :func:`small_files` yields; closing it cancels what is still to read."""

    def read(batch: list[str]) -> list[bytes]:
        return [store.get_bytes(digest) for digest in batch]

    with ThreadPoolExecutor(2, thread_name_prefix="casstore-read") as pool:
        ahead: deque[Future[list[bytes]]] = deque()
        try:
            for batch in _batches(entries):
                ahead.append(pool.submit(read, batch))
                if len(ahead) > READ_AHEAD:
                    yield from ahead.popleft().result()
            while ahead:
                yield from ahead.popleft().result()
        finally:
            for pending in ahead:  # the writer stopped (an error): read no further
                pending.cancel()
