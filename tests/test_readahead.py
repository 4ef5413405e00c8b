"""The read-ahead that feeds tar and zip output: every small file in tree order,
whatever order the store reads them in; one far ahead read on its own; an error
reaches the writer; a writer that stops early leaves nothing reading and only a
bounded number of files read."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import partial

import pytest

from casstore.ahead import ahead
from casstore.errors import IntegrityError
from casstore.format.digest import hash_bytes
from casstore.format.tree import Entry
from casstore.trees import readahead
from casstore.trees.readahead import SMALL_FILE, small_files


class FakeStore:
    """Reads in an order of its own (shuffled), on threads, as a store's packs would."""

    def __init__(self, contents: list[bytes], bad: str | None = None, seed: int = 1) -> None:
        self.objects = {hash_bytes(c): c for c in contents}
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

    def get_bytes(self, digest: str) -> bytes:
        self.alone.append(digest)
        return self._read(digest)[1]

    @contextmanager
    def read_many(self, digests: Iterable[str]) -> Iterator[Iterator[tuple[str, bytes]]]:
        order = list(dict.fromkeys(digests))
        random.Random(self.seed).shuffle(order)
        with ahead((partial(self._read, d) for d in order), depth=4) as found:
            yield found


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
    with small_files(store, entries) as smalls:  # type: ignore[arg-type]
        assert list(smalls) == [*contents, contents[5]]
    # Each read once (the one written twice too); the large file is the writer's to stream.
    assert sorted(store.reads) == sorted(hash_bytes(c) for c in contents)
    assert store.alone == []


def test_a_file_far_ahead_in_the_stores_order_is_read_on_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(readahead, "STASH_BYTES", 2000)  # a few files wait, no more
    contents = [str(i).encode() * 50 for i in range(300)]
    store = FakeStore(contents)
    with small_files(store, entries_of(contents)) as smalls:  # type: ignore[arg-type]
        assert list(smalls) == contents
    assert store.alone  # the stash filled up: some were read on their own


def test_a_damaged_file_reaches_the_writer() -> None:
    contents = [str(i).encode() for i in range(300)]
    store = FakeStore(contents, bad=hash_bytes(contents[150]))
    got: list[bytes] = []
    with (
        small_files(store, entries_of(contents)) as smalls,  # type: ignore[arg-type]
        pytest.raises(IntegrityError, match="damaged"),
    ):
        got.extend(smalls)
    assert got == contents[: len(got)] and len(got) <= 150  # in order, never past it


def test_a_writer_that_stops_leaves_nothing_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readahead, "STASH_BYTES", 100)
    contents = [str(i).encode() for i in range(2000)]
    store = FakeStore(contents)
    before = threading.active_count()
    with small_files(store, entries_of(contents)) as smalls:  # type: ignore[arg-type]
        assert next(smalls) == contents[0]
    assert threading.active_count() == before  # leaving joined the reader threads
    assert len(store.reads) <= 100  # a stash and the read-ahead, not all 2,000
