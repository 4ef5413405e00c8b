"""The read-ahead that feeds folder, tar and zip output: every small file, in tree
order, whatever the batches; an error reaches the writer; a writer that stops early
leaves nothing reading and only a bounded number of files read."""

from __future__ import annotations

import threading

import pytest

from casstore.errors import IntegrityError
from casstore.format.digest import hash_bytes
from casstore.format.tree import Entry
from casstore.trees import readahead
from casstore.trees.readahead import BATCH_FILES, READ_AHEAD, SMALL_FILE, small_files


class FakeStore:
    def __init__(self, contents: list[bytes], bad: str | None = None) -> None:
        self.objects = {hash_bytes(c): c for c in contents}
        self.bad = bad
        self.reads = 0
        self.lock = threading.Lock()

    def get_bytes(self, digest: str) -> bytes:
        with self.lock:
            self.reads += 1
        if digest == self.bad:
            raise IntegrityError(f"{digest}: damaged")
        return self.objects[digest]


def entries_of(contents: list[bytes]) -> list[Entry]:
    out = []
    for i, content in enumerate(contents):
        out.append(Entry(f"f{i:05}", "file", len(content), hash_bytes(content)))
        if i % 7 == 0:
            out.append(Entry(f"f{i:05}-link", "symlink", target="x"))
    return out


def test_every_small_file_in_tree_order_across_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readahead, "BATCH_BYTES", 5000)  # batches close by size and by count
    contents = [bytes([i % 256]) * (i * 37 % 900) + str(i).encode() for i in range(700)]
    large = b"L" * (SMALL_FILE + 1)
    entries = entries_of(contents)
    entries.insert(100, Entry("large", "file", len(large), hash_bytes(large)))
    store = FakeStore([*contents, large])
    with small_files(store, entries) as smalls:  # type: ignore[arg-type]
        assert list(smalls) == contents
    assert store.reads == len(contents)  # the large file is the writer's to stream


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


def test_a_writer_that_stops_leaves_nothing_reading() -> None:
    contents = [str(i).encode() for i in range(BATCH_FILES * (READ_AHEAD + 20))]
    store = FakeStore(contents)
    before = threading.active_count()
    with small_files(store, entries_of(contents)) as smalls:  # type: ignore[arg-type]
        assert next(smalls) == contents[0]
    assert threading.active_count() == before  # leaving joined the reader threads
    assert store.reads <= BATCH_FILES * (READ_AHEAD + 2)
