"""Small files read ahead of whoever writes them out in path order (a tar, a zip).

Reading a small packed file is decompressing its block and re-hashing it, both
of which release the GIL; writing it is a system call, which does too. Two
reader threads (:mod:`casstore.ahead`) keep the writer fed, so writing a tree
costs about what writing its bytes costs, not that plus decoding them one after
another. Files are read in runs (neighbours, most often from one block), one
task each: a task per file cost more in scheduling than reading a small file
does. A folder, whose files may be written in any order, reads them as they lie
in the store instead (``ObjectReader.read_many``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING

from casstore.ahead import ahead
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


def is_large(entry: Entry) -> bool:
    return entry.type == "file" and entry.size > SMALL_FILE


def segments(entries: list[Entry]) -> Iterator[list[Entry]]:
    """``entries`` in order, in runs one reader task takes: neighbours, up to
    ``BATCH_BYTES`` of small files or ``BATCH_FILES`` entries; a large file alone."""
    run: list[Entry] = []
    size = 0
    for entry in entries:
        if is_large(entry):
            if run:
                yield run
                run, size = [], 0
            yield [entry]
            continue
        run.append(entry)
        size += entry.size if entry.type == "file" else 0
        if size >= BATCH_BYTES or len(run) >= BATCH_FILES:
            yield run
            run, size = [], 0
    if run:
        yield run


@contextmanager
def small_files(store: ObjectReader, entries: list[Entry]) -> Iterator[Iterator[bytes]]:
    """The verified content of each small file among ``entries``, in their order.

    A context: leaving it stops the reading and joins the reader threads."""

    def read(batch: list[str]) -> list[bytes]:
        return [store.get_bytes(digest) for digest in batch]

    batches = ([e.digest for e in run if is_small(e)] for run in segments(entries))
    tasks = (partial(read, batch) for batch in batches if batch)
    with ahead(tasks, depth=READ_AHEAD) as read_batches:
        yield itertools.chain.from_iterable(read_batches)
