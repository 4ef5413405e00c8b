"""Property tests: every put path round-trips, at sizes around the chunk boundaries."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casstore.format.digest import hash_bytes
from casstore.format.objects import IO_SIZE
from casstore.store.objects import ObjectInfo, Store
from casstore.store.open import init_store
from casstore.testing.strategies import Snapshot, snapshots
from casstore.trees.ingest import tree_digest

if TYPE_CHECKING:
    from typing_extensions import Buffer

BOUNDARIES = [0, 1, IO_SIZE - 1, IO_SIZE, IO_SIZE + 1, 2 * IO_SIZE, 3 * IO_SIZE + 1]


@pytest.fixture(scope="module")
def prop_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store, _ = init_store(str(tmp_path_factory.mktemp("props") / "store"))
    return store


@pytest.fixture(scope="module")
def blob_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Loose objects only: a tree stored in ``prop_store`` packs its files, and a packed
    object cannot be deleted one by one (whichever test runs first)."""
    store, _ = init_store(str(tmp_path_factory.mktemp("blobs") / "store"))
    return store


class Trickle(io.RawIOBase):
    """A stream that returns fewer bytes than asked, like a pipe or a socket."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._step, len(self._data) - self._pos)
        view[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


contents = st.builds(
    lambda base, delta, seed, kind: _content(max(0, base + delta), seed, kind),
    st.sampled_from(BOUNDARIES),
    st.integers(-3, 3),
    st.integers(0, 2**32),
    st.sampled_from(["random", "zeros", "text", "mixed"]),
)


def _content(size: int, seed: int, kind: str) -> bytes:
    import random

    rng = random.Random(seed)
    if kind == "zeros":
        return bytes(size)
    if kind == "text":
        return (b"the quick brown fox %d " % seed * (size // 20 + 1))[:size]
    if kind == "mixed":
        half = size // 2
        return rng.randbytes(half) + bytes(size - half)
    return rng.randbytes(size)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=contents, step=st.sampled_from([1 << 10, 65_537, IO_SIZE + 1]))
def test_every_put_path_roundtrips(
    blob_store: Store, tmp_path_factory: pytest.TempPathFactory, data: bytes, step: int
) -> None:
    expected = hash_bytes(data)
    folder = tmp_path_factory.mktemp("rt")
    path = folder / "in"
    path.write_bytes(data)
    puts: dict[str, Callable[[], ObjectInfo]] = {
        "bytes": lambda: blob_store.put_bytes(data),
        "stream": lambda: blob_store.put_stream(io.BufferedReader(Trickle(data, step))),
        "file": lambda: blob_store.put_file(path),
    }
    for name, put in puts.items():
        info = put()
        assert (info.digest, info.size) == (expected, len(data)), name
        assert blob_store.stat(expected) == info, name
        # Each path's own stored object is read back by every read path.
        assert blob_store.get_bytes(expected) == data, name
        out = folder / f"out-{name}"
        blob_store.get_file(expected, out)
        assert out.read_bytes() == data, name
        with blob_store.open(expected) as reader:
            assert reader.read() == data, name
        blob_store.delete(expected)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(snapshot=snapshots(max_entries=14))
def test_trees_round_trip_in_every_format(
    prop_store: Store, tmp_path_factory: pytest.TempPathFactory, snapshot: Snapshot
) -> None:
    # Symlinks inside, outside, absolute and dangling, exec bits, empty folders, nesting:
    # whatever is ingested comes back, in every format, as the same tree.
    work = tmp_path_factory.mktemp("trees")
    digest = prop_store.put_tree(snapshot.write(work / "source")).digest
    out = work / "out"
    out.mkdir()
    sentinel = out / "sentinel"
    sentinel.mkdir()
    for name in ("folder", "x.zip", "x.tar", "x.tar.gz", "x.tar.zst"):
        prop_store.get_tree(digest, out / name)
        assert tree_digest(out / name).digest == digest, name
    # Nothing was written anywhere but the destinations (links are never followed).
    assert list(sentinel.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["folder", "x.zip", "x.tar", "x.tar.gz", "x.tar.zst", "sentinel"]
    )
    for path, (_data, executable) in snapshot.files.items():
        mode = (out / "folder" / path).stat().st_mode
        assert bool(mode & 0o100) == executable and mode & 0o644 == 0o644, path
    for path, target in snapshot.symlinks.items():
        assert os.readlink(out / "folder" / path) == target, path
