"""The read-ahead that feeds tar and zip output: every file in tree order, whatever
order the store reads them in, a large one as its chunks (its whole digest and size
checked before its last chunk is handed on); one far ahead read on its own; an
error reaches the writer; a writer that stops early leaves nothing reading and only
a bounded number of files read."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial

import pytest

from casstore.ahead import ahead
from casstore.errors import ArchiveError, IntegrityError
from casstore.format.digest import hash_bytes
from casstore.format.tree import Entry
from casstore.trees import readahead
from casstore.trees.readahead import SMALL_FILE, file_contents


class FakeStore:
    """Reads in an order of its own (shuffled), on threads, as a store's packs would."""

    def __init__(self, contents: list[bytes], bad: str | None = None, seed: int = 1) -> None:
        self.objects = {hash_bytes(c): c for c in contents}
        self.chunks: dict[str, list[tuple[str, int]]] = {}
        self.bad = bad
        self.seed = seed
        self.reads: list[str] = []
        self.alone: list[str] = []
        self.lock = threading.Lock()

    def _read(self, digest: str) -> tuple[str, bytes]:
        with self.lock:
            self.reads.append(digest)
        if digest == self.bad:
            raise IntegrityError(f"{digest}: damaged")
        return digest, self.objects[digest]

    def chunk_list(self, digest: str) -> list[tuple[str, int]] | None:
        return self.chunks.get(digest)

    def chunked(self, content: bytes, size: int) -> str:
        """Store ``content`` as chunks of ``size`` bytes; its digest."""
        pieces = [content[i : i + size] for i in range(0, len(content), size)]
        self.objects.update((hash_bytes(p), p) for p in pieces)
        digest = hash_bytes(content)
        self.chunks[digest] = [(hash_bytes(p), len(p)) for p in pieces]
        return digest

    def get_bytes(self, digest: str) -> bytes:
        self.alone.append(digest)
        return self._read(digest)[1]

    @contextmanager
    def read_many(self, digests: Iterable[str]) -> Iterator[Iterator[tuple[str, bytes]]]:
        order = list(dict.fromkeys(digests))
        random.Random(self.seed).shuffle(order)
        with ahead((partial(self._read, d) for d in order), depth=4) as found:
            yield found


def joined(contents: Iterator[Iterable[bytes] | None]) -> list[bytes | None]:
    return [None if pieces is None else b"".join(pieces) for pieces in contents]


def entries_of(contents: list[bytes]) -> list[Entry]:
    out = []
    for i, content in enumerate(contents):
        out.append(Entry(f"f{i:05}", "file", len(content), hash_bytes(content)))
        if i % 7 == 0:
            out.append(Entry(f"f{i:05}-link", "symlink", target="x"))
    return out


def test_every_small_file_in_tree_order_whatever_the_stores_order() -> None:
    contents = [bytes([i % 256]) * (i * 37 % 900) + str(i).encode() for i in range(700)]
    large = b"L" * (SMALL_FILE + 1)
    entries = entries_of(contents)
    entries.insert(100, Entry("large", "file", len(large), hash_bytes(large)))
    entries.append(Entry("again", "file", len(contents[5]), hash_bytes(contents[5])))
    store = FakeStore([*contents, large])
    with file_contents(store, entries) as got:  # type: ignore[arg-type]
        expected: list[bytes | None] = [
            store.objects[e.digest] for e in entries if e.type == "file"
        ]
        expected[expected.index(large)] = None  # not chunked: the writer's to stream
        assert joined(got) == expected and len(expected) == len(contents) + 2
    # Each read once (the one written twice too); the large file is the writer's to stream.
    assert sorted(store.reads) == sorted(hash_bytes(c) for c in contents)
    assert store.alone == []


def test_a_file_far_ahead_in_the_stores_order_is_read_on_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(readahead, "STASH_BYTES", 2000)  # a few files wait, no more
    contents = [str(i).encode() * 50 for i in range(300)]
    store = FakeStore(contents)
    with file_contents(store, entries_of(contents)) as got:  # type: ignore[arg-type]
        assert joined(got) == contents
    assert store.alone  # the stash filled up: some were read on their own


def test_a_damaged_file_reaches_the_writer() -> None:
    contents = [str(i).encode() for i in range(300)]
    store = FakeStore(contents, bad=hash_bytes(contents[150]))
    got: list[bytes] = []
    with (
        file_contents(store, entries_of(contents)) as each,  # type: ignore[arg-type]
        pytest.raises(IntegrityError, match="damaged"),
    ):
        for pieces in each:
            got.append(b"".join(pieces or ()))
    assert got == contents[: len(got)] and len(got) <= 150  # in order, never past it


def test_a_writer_that_stops_leaves_nothing_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readahead, "STASH_BYTES", 100)
    contents = [str(i).encode() for i in range(2000)]
    store = FakeStore(contents)
    before = threading.active_count()
    with file_contents(store, entries_of(contents)) as each:  # type: ignore[arg-type]
        first = next(each)
        assert first is not None and list(first) == [contents[0]]
    assert threading.active_count() == before  # leaving joined the reader threads
    assert len(store.reads) <= 100  # a stash and the read-ahead, not all 2,000


def large_tree(store: FakeStore) -> tuple[list[Entry], list[bytes], bytes]:
    """Small files around a large one stored as chunks, one chunk shared with a small file."""
    rng = random.Random(3)
    large = rng.randbytes(SMALL_FILE + 5000)
    digest = store.chunked(large, SMALL_FILE // 3)
    smalls = [rng.randbytes(2000) for _ in range(40)] + [large[: SMALL_FILE // 3]]
    store.objects.update((hash_bytes(c), c) for c in smalls)
    entries = [Entry(f"a{i:03}", "file", len(c), hash_bytes(c)) for i, c in enumerate(smalls)]
    entries.insert(20, Entry("big", "file", len(large), digest))
    return entries, smalls, large


def test_a_large_file_comes_as_its_chunks_in_order() -> None:
    store = FakeStore([])
    entries, smalls, large = large_tree(store)
    with file_contents(store, entries) as each:  # type: ignore[arg-type]
        got = [list(pieces or ()) for pieces in each]
    assert [b"".join(p) for p in got] == [*smalls[:20], large, *smalls[20:]]
    assert [len(p) for p in got[20]] == [n for _, n in store.chunks[hash_bytes(large)]]
    assert store.alone == []


def test_without_chunks_a_large_file_is_left_to_the_writer() -> None:
    store = FakeStore([])
    entries, smalls, _ = large_tree(store)
    with file_contents(store, entries, chunks=False) as each:  # type: ignore[arg-type]
        assert joined(each) == [*smalls[:20], None, *smalls[20:]]


def test_chunks_that_are_not_the_file_stop_before_its_last_piece() -> None:
    store = FakeStore([])
    entries, _, large = large_tree(store)
    chunks = store.chunks[hash_bytes(large)]
    store.chunks[hash_bytes(large)] = [chunks[0], chunks[0], *chunks[2:]]  # a swapped chunk
    handed: list[bytes] = []
    with file_contents(store, entries) as each:  # type: ignore[arg-type]
        for _ in range(20):
            next(each)
        pieces = next(each)
        assert pieces is not None
        with pytest.raises(IntegrityError, match="its chunks hash to something else"):
            handed.extend(pieces)
    assert len(handed) == len(chunks) - 1  # the last one never reached the writer


def test_content_of_another_size_than_the_tree_says_is_refused() -> None:
    content = b"x" * 100
    store = FakeStore([content])
    entries = [Entry("f", "file", 99, hash_bytes(content))]
    with (
        file_contents(store, entries) as each,  # type: ignore[arg-type]
        pytest.raises(ArchiveError, match="not the size its tree records"),
    ):
        next(each)
