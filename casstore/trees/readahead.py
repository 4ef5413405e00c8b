"""Files' contents read ahead of whoever writes them out in path order (a tar, a zip).

The store reads small objects fastest as they lie in its packs
(``ObjectReader.read_many``: a span of blocks decoded and hashed at a time on
two threads ahead of the writer); a tar or a zip must follow path order. The
two mostly agree (a snapshot is stored in the order it was read), so objects
that arrive before their turn wait, up to ``STASH_BYTES``; one that lies
farther ahead than that is read on its own. Asking the store file by file in
path order cost twice as much: Python per file on the readers, and a block
decoded again whenever path order came back to it.

A large file stored as chunks is read the same way, chunk by chunk, on the
readers: streamed on the writer's thread, it was decoded there while the readers
waited.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from casstore.errors import ArchiveError, CasError, ChunkMissing, IntegrityError, ObjectNotFound
from casstore.format.digest import HEX_LENGTH, PREFIX
from casstore.format.tree import Entry

if TYPE_CHECKING:
    from casstore.trees.protocol import ObjectReader

#: Files up to this size are read whole, verified, ahead of the writer; larger ones
#: are read chunk by chunk, or (not chunked) streamed by the writer itself.
SMALL_FILE = 4 << 20
#: Contents that arrived before their turn wait, up to this many bytes.
STASH_BYTES = 16 << 20
#: Chunk lists of large files are looked up this many at a time (a request each on S3).
LOOKUPS = 8


def is_small(entry: Entry) -> bool:
    return entry.type == "file" and entry.size <= SMALL_FILE


@contextmanager
def file_contents(
    store: ObjectReader, entries: list[Entry], *, chunks: bool = True
) -> Iterator[Iterator[Iterable[bytes] | None]]:
    """For each file among ``entries``, in their order, its content as pieces, each
    verified, or None for a large file the caller streams itself (any that is not
    chunked; all large ones without ``chunks``, for a writer that must verify a whole
    file before writing any of it). A chunked file's whole digest and every file's
    size are checked as its last piece is taken, before it is handed on. Each file's
    pieces are to be taken in full before the next file's.

    A context: leaving it stops the reading and joins the reader threads."""
    files = [entry for entry in entries if entry.type == "file"]
    plans = _plans(store, files, chunks)
    wanted = [digest for plan in plans if plan is not None for digest in plan]
    with store.read_many(wanted) as arriving:
        take = _named(_in_order(store, wanted, arriving).__next__, files, plans)
        yield (
            None if plan is None else _content(entry, plan, take)
            for entry, plan in zip(files, plans, strict=True)
        )


#: What a snapshot's reader meets when an object is damaged or absent.
DAMAGE = (IntegrityError, ObjectNotFound)
_D = TypeVar("_D", bound=CasError)


def in_file(exc: _D, path: str) -> _D:
    """``exc``, damage the store names by an object's digest, named by the file it belongs
    to as well (once): a digest says nothing to whoever reads a snapshot."""
    named = f"{path!r}: "
    if not str(exc).startswith(named):
        exc.args = (named + str(exc),)  # the same error, of the same class (exit code)
    return exc


def with_path(exc: _D, owners: Mapping[str, str]) -> _D:
    """``exc`` :func:`in_file` of the file whose object it names (an absent one by
    ``what``, a damaged one first in its message, as the store says it), if ``owners``
    (digests to paths) has it."""
    if isinstance(exc, ObjectNotFound):
        path = owners.get(exc.what)
    else:
        path = owners.get(str(exc)[: len(PREFIX) + HEX_LENGTH])
    return exc if path is None else in_file(exc, path)


def _named(
    take: Callable[[], bytes], files: list[Entry], plans: list[list[str] | None]
) -> Callable[[], bytes]:
    def named() -> bytes:
        try:
            return take()
        except DAMAGE as exc:  # arriving in the store's order: maybe another file's
            owners = {d: e.path for e, plan in zip(files, plans, strict=True) for d in plan or ()}
            raise with_path(exc, owners) from None

    return named


def _plans(store: ObjectReader, files: list[Entry], chunks: bool) -> list[list[str] | None]:
    """For each file, the objects that make up its content, or None to stream it."""
    large = {entry.digest for entry in files if not is_small(entry)} if chunks else set()
    lists: dict[str, list[tuple[str, int]] | None] = {}
    if large:
        with ThreadPoolExecutor(LOOKUPS, thread_name_prefix="casstore-chunks") as pool:
            lists = dict(zip(large, pool.map(store.chunk_list, large), strict=True))
    plans: list[list[str] | None] = []
    for entry in files:
        if is_small(entry):
            plans.append([entry.digest])
        else:
            found = lists.get(entry.digest)
            plans.append(None if found is None else [digest for digest, _ in found])
    return plans


def _content(entry: Entry, plan: list[str], take: Callable[[], bytes]) -> Iterable[bytes]:
    if plan != [entry.digest]:
        return _chunks(entry, plan, take)
    data = take()
    if len(data) != entry.size:
        raise ArchiveError(f"{entry.path!r}: not the size its tree records")
    return (data,)


def _chunks(entry: Entry, plan: list[str], take: Callable[[], bytes]) -> Iterator[bytes]:
    """The chunks of ``plan`` taken in turn, the last held back until the whole checks."""
    from blake3 import blake3

    hasher, size, held = blake3(), 0, b""
    for index in range(len(plan)):
        try:
            data = take()
        except ObjectNotFound as exc:  # as any reader of the file says it: corrupt, not absent
            if exc.what not in plan:
                raise
            raise in_file(ChunkMissing(entry.digest, exc.what), entry.path) from None
        hasher.update(data)
        size += len(data)
        if index:
            yield held
        held = data
    if PREFIX + hasher.hexdigest() != entry.digest:
        raise IntegrityError(f"{entry.path!r}: its chunks hash to something else ({entry.digest})")
    if size != entry.size:
        raise ArchiveError(f"{entry.path!r}: not the size its tree records")
    yield held


def _in_order(
    store: ObjectReader, wanted: list[str], arriving: Iterator[tuple[str, bytes]]
) -> Iterator[bytes]:
    uses = Counter(wanted)  # a content may be written at several paths, a chunk in several files
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
