"""Small files read ahead of whoever writes them out in path order (a tar, a zip).

The store reads small files fastest as they lie in its packs
(``ObjectReader.read_many``: a span of blocks decoded and hashed at a time on
two threads ahead of the writer); a tar or a zip must follow path order. The
two mostly agree (a snapshot is stored in the order it was read), so files that
arrive before their turn wait, up to ``STASH_BYTES``; a file that lies farther
ahead than that is read on its own. Asking the store file by file in path order
cost twice as much: Python per file on the readers, and a block decoded again
whenever path order came back to it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from casstore.format.tree import Entry

if TYPE_CHECKING:
    from casstore.trees.protocol import ObjectReader

#: Files up to this size are read whole, verified, ahead of the writer; larger ones are
#: streamed (and verified as they are) by the writer itself.
SMALL_FILE = 4 << 20
#: Contents that arrived before their turn wait, up to this many bytes.
STASH_BYTES = 16 << 20


def is_small(entry: Entry) -> bool:
    return entry.type == "file" and entry.size <= SMALL_FILE


@contextmanager
def small_files(store: ObjectReader, entries: list[Entry]) -> Iterator[Iterator[bytes]]:
    """The verified content of each small file among ``entries``, in their order.

    A context: leaving it stops the reading and joins the reader threads."""
    wanted = [entry.digest for entry in entries if is_small(entry)]
    with store.read_many(wanted) as arriving:
        yield _in_order(store, wanted, arriving)


def _in_order(
    store: ObjectReader, wanted: list[str], arriving: Iterator[tuple[str, bytes]]
) -> Iterator[bytes]:
    uses = Counter(wanted)  # a file's content may be written at several paths
    stash: dict[str, bytes] = {}
    size = 0
    for digest in wanted:
        while digest not in stash and size < STASH_BYTES:
            got = next(arriving, None)
            if got is None:
                break
            if uses[got[0]]:  # not read on its own meanwhile and used no more
                stash[got[0]] = got[1]
                size += len(got[1])
        data = stash.get(digest)
        if data is None:  # far ahead in the store's order: read on its own
            data = store.get_bytes(digest)
        uses[digest] -= 1
        if not uses[digest] and digest in stash:
            size -= len(stash.pop(digest))
        yield data
