"""Re-reading many stored objects to check them (``cas fsck``, ``cas verify``).

Packed objects are read a span of neighbouring blocks per request, each block
decoded once and each object re-hashed from it: a request per block cost more
than its bytes on S3 (fsck of a 514 MB snapshot on SeaweedFS: 5.3 s before,
2.8 s after). Loose objects are read one by one, the smallest first: chunk
lists are small, so the loose chunks they name are mostly verified through
their chunked object before they would be read on their own, and are not read
again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, cast

from casstore.errors import ChunkMissing, IntegrityError, ObjectNotFound
from casstore.format.digest import hash_bytes
from casstore.format.objects import IO_SIZE
from casstore.format.records import HEAD_BYTES, MAX_RECORD_BYTES, record_kind
from casstore.store.packs import block_spans, read_span

if TYPE_CHECKING:
    from casstore.format.packindex import Location
    from casstore.store.objects import Store


@dataclass(frozen=True)
class Checked:
    """What re-reading one object found."""

    #: Content bytes read and verified (0 unless the object is sound).
    size: int = 0
    #: Why the object is corrupt; None when it is not.
    problem: str | None = None
    #: Not in the store (gc may have removed it since it was listed).
    missing: bool = False
    #: For a chunked object one of whose chunks is not in the store: that chunk.
    missing_chunk: str | None = None
    #: The content of a record (what names other objects), when the object is one.
    record: bytes | None = None


def _is_record(head: bytes, size: int) -> bool:
    return size <= MAX_RECORD_BYTES and record_kind(head) is not None


class _Rereader:
    def __init__(self, store: Store, on_object: Callable[[], None] | None) -> None:
        self._store = store
        self._on_object = on_object
        self._lock = threading.Lock()
        #: Chunks read and verified inside a sound chunked object: not read again.
        self.verified: dict[str, int] = {}

    def done(self, count: int) -> None:
        if self._on_object is not None:
            for _ in range(count):
                self._on_object()

    def one(self, digest: str) -> list[tuple[str, Checked]]:
        """Any object, read through the store like any reader (never its cache)."""
        with self._lock:
            known = self.verified.get(digest)
        checked = Checked(known) if known is not None else self._read(digest)
        self.done(1)
        return [(digest, checked)]

    def _read(self, digest: str) -> Checked:
        try:
            with self._store.open_stored(digest) as reader:
                head = reader.read(HEAD_BYTES)
                if _is_record(head, reader.size):
                    return Checked(reader.size, record=head + reader.read())
                buffer = bytearray(IO_SIZE)
                while reader.readinto(buffer):
                    pass
        except ChunkMissing as exc:
            return Checked(missing_chunk=exc.chunk)
        except IntegrityError as exc:
            return Checked(problem=str(exc))
        except ObjectNotFound:
            return Checked(missing=True)
        if reader.chunks is not None:
            with self._lock:
                self.verified.update(reader.chunks)
        return Checked(reader.size)

    def span(
        self, pack: str, span: list[tuple[int, int]], objects: list[tuple[str, Location]]
    ) -> list[tuple[str, Checked]]:
        """Packed objects whose blocks make up ``span``, in block order: one request."""
        found: list[tuple[str, Checked]] = []
        offset, block = -1, cast(bytes | IntegrityError, b"")
        try:
            blocks = read_span(self._store.backend, pack, span)
            for digest, where in objects:
                while offset != where.block_offset:
                    offset, block = next(blocks)
                if isinstance(block, IntegrityError):
                    found.append((digest, Checked(problem=f"{digest}: {block}")))
                else:
                    found.append((digest, _from_block(digest, where, block)))
        except ObjectNotFound:  # rewritten by gc since the listing: look for each again
            found = [(digest, self._read(digest)) for digest, _ in objects]
        self.done(len(objects))
        return found


def _from_block(digest: str, where: Location, block: bytes) -> Checked:
    content = memoryview(block)[where.offset : where.offset + where.length]
    actual = hash_bytes(content)
    if actual != digest:
        return Checked(problem=f"{digest}: content hashes to {actual}")
    head = bytes(content[:HEAD_BYTES])
    return Checked(where.length, record=bytes(content) if _is_record(head, where.length) else None)


def _spans(
    objects: list[tuple[str, Location]],
) -> Iterator[tuple[list[tuple[int, int]], list[tuple[str, Location]]]]:
    """The packed objects of one pack as spans of blocks, each with its objects."""
    objects.sort(key=lambda item: (item[1].block_offset, item[1].offset))
    blocks = sorted({(where.block_offset, where.block_length) for _, where in objects})
    pending = iter(objects)
    item = next(pending, None)
    for span in block_spans(blocks):
        mine: list[tuple[str, Location]] = []
        while item is not None and item[1].block_offset <= span[-1][0]:
            mine.append(item)
            item = next(pending, None)
        yield span, mine


def reread(
    store: Store,
    digests: Iterable[str],
    *,
    jobs: int = 8,
    sizes: Mapping[str, int] | None = None,
    on_object: Callable[[], None] | None = None,
) -> dict[str, Checked]:
    """Read and re-hash each object, on ``jobs`` threads; what was found, by digest.

    ``sizes`` (stored sizes of loose objects, from a listing) orders loose objects
    smallest first: chunk lists are small, so the chunks they name are mostly
    verified through them before anything else would read them."""
    rereader = _Rereader(store, on_object)
    loose: list[str] = []
    by_pack: dict[str, list[tuple[str, Location]]] = {}
    for digest in dict.fromkeys(digests):
        where = store.packs.get(digest)
        if where is None:
            loose.append(digest)
        else:
            by_pack.setdefault(where.pack, []).append((digest, where))
    if sizes is not None:
        loose.sort(key=lambda digest: sizes.get(digest, 0))
    found: dict[str, Checked] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        units = [partial(rereader.one, digest) for digest in loose]
        for pack, objects in by_pack.items():
            units.extend(partial(rereader.span, pack, span, mine) for span, mine in _spans(objects))
        for results in pool.map(lambda unit: unit(), units):
            found.update(results)
    return found
