"""The backend contract as a test suite: subclass :class:`BackendTests` and give it a
``backend`` fixture (a fresh, empty backend) to check a new backend.

Every primitive the store relies on is pinned here: a publish never clobbers,
a read past the end is short, a move re-dates what it moves (gc's grace
period counts from the move), listings hide temp files, deleting a missing
key says so, and batched calls answer per item. A read-only backend runs the
same suite with ``writable = False`` and a ``writer`` that seeds its content.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from casstore.backends.base import Backend
from casstore.errors import ObjectNotFound, ReadOnlyStore


class BackendTests:
    """Tests every :class:`~casstore.backends.base.Backend` must pass."""

    #: False for a backend that refuses every write (its content comes from ``writer``).
    writable = True

    def writer(self, backend: Backend) -> Backend:
        """The backend that seeds test content: the backend itself unless read-only."""
        return backend

    def make_old(self, backend: Backend, key: str) -> None:
        """Make ``key`` older than now. Backends that can set times override this; the
        default waits until the clock has moved past the key's (second-granular) time."""
        time.sleep(2.1)

    def _temp(self, backend: Backend, data: bytes) -> Path:
        path = backend.staging_dir() / f"staged-{time.monotonic_ns()}"
        path.write_bytes(data)
        return path

    def test_write_read_and_replace(self, backend: Backend) -> None:
        if not self.writable:
            with pytest.raises(ReadOnlyStore):
                backend.write_bytes("refs/tags/a", b"one")
            return
        backend.write_bytes("refs/tags/a", b"one")
        assert backend.read_bytes("refs/tags/a") == b"one"
        backend.write_bytes("refs/tags/a", b"two")  # refs and the marker are replaced
        assert backend.read_bytes("refs/tags/a") == b"two"
        with backend.open_read("refs/tags/a") as f:
            assert f.read() == b"two"
        assert backend.size("refs/tags/a") == 3

    def test_missing_keys_are_not_found(self, backend: Backend) -> None:
        for call in (
            lambda: backend.read_bytes("objects/none"),
            lambda: backend.open_read("objects/none"),
            lambda: backend.read_range("objects/none", 0, 10),
            lambda: backend.size("objects/none"),
        ):
            with pytest.raises(ObjectNotFound):
                call()
        assert not backend.exists("objects/none")

    def test_read_range_is_short_past_the_end(self, backend: Backend) -> None:
        self.writer(backend).write_bytes("k/range", bytes(range(100)))
        assert backend.read_range("k/range", 10, 20) == bytes(range(10, 20))
        assert backend.read_range("k/range", 90, 200) == bytes(range(90, 100))
        assert backend.read_range("k/range", 100, 110) == b""
        assert backend.read_range("k/range", 150, 160) == b""

    def test_publish_never_clobbers(self, backend: Backend) -> None:
        first = self._temp(backend, b"first")
        if not self.writable:
            with pytest.raises(ReadOnlyStore):
                backend.publish(first, "objects/ab/cd")
            assert not first.exists() and not backend.exists("objects/ab/cd")
            return
        assert backend.publish(first, "objects/ab/cd") is True
        assert not first.exists()  # the backend took ownership
        second = self._temp(backend, b"second")
        assert backend.publish(second, "objects/ab/cd") is False
        assert not second.exists()
        assert backend.read_bytes("objects/ab/cd") == b"first"

    def test_create_many_answers_per_item(self, backend: Backend) -> None:
        items = [("packs/a", b"a"), ("packs/b", b"b")]
        if not self.writable:
            with pytest.raises(ReadOnlyStore):
                backend.create_many(items)
            assert not backend.exists("packs/a")
            return
        assert backend.create_many(items[:1]) == [True]
        assert backend.create_many([("packs/a", b"other"), *items[1:]]) == [False, True]
        assert backend.read_bytes("packs/a") == b"a"
        assert backend.read_bytes("packs/b") == b"b"

    def test_exists_many_answers_per_item(self, backend: Backend) -> None:
        self.writer(backend).write_bytes("x/here", b"1")
        assert backend.exists_many(["x/gone", "x/here", "x/also-gone"]) == [False, True, False]
        assert backend.exists_many([]) == []

    def test_delete(self, backend: Backend) -> None:
        self.writer(backend).write_bytes("x/one", b"1")
        if not self.writable:
            with pytest.raises(ReadOnlyStore):
                backend.delete("x/one")
            with pytest.raises(ReadOnlyStore):
                backend.delete_many(["x/one"])
            assert backend.exists("x/one")
            return
        with pytest.raises(ObjectNotFound):
            backend.delete("x/none")
        backend.delete("x/one")
        assert not backend.exists("x/one")
        backend.write_bytes("x/two", b"2")
        backend.delete_many(["x/two", "x/none"])  # absent keys are ignored
        assert list(backend.list("x")) == []

    def test_list_is_recursive_and_hides_temp_files(self, backend: Backend) -> None:
        writer = self.writer(backend)
        for key in ("a/1", "a/b/2", "a/b/c/3", "ab/4"):
            writer.write_bytes(key, key.encode())
        # A writer mid-publish leaves a temp file in its staging folder only.
        (writer.staging_dir() / ".tmp-in-flight").write_bytes(b"partial")
        assert sorted(backend.list("a")) == ["a/1", "a/b/2", "a/b/c/3"]
        assert list(backend.list("nothing-here")) == []
        detailed = {info.key: info for info in backend.list_detailed("a")}
        assert sorted(detailed) == ["a/1", "a/b/2", "a/b/c/3"]
        assert detailed["a/b/c/3"].size == len(b"a/b/c/3")
        assert abs(detailed["a/1"].mtime - time.time()) < 3600

    def test_move_redates_what_it_moves(self, backend: Backend) -> None:
        writer = self.writer(backend)
        writer.write_bytes("objects/src", b"moved")
        self.make_old(writer, "objects/src")
        (before,) = [i.mtime for i in backend.list_detailed("objects") if i.key == "objects/src"]
        if not self.writable:
            with pytest.raises(ReadOnlyStore):
                backend.move("objects/src", "trash/b/objects/src")
            assert backend.exists("objects/src")
            return
        backend.move("objects/src", "trash/b/objects/src")
        assert not backend.exists("objects/src")
        assert backend.read_bytes("trash/b/objects/src") == b"moved"
        (after,) = [i.mtime for i in backend.list_detailed("trash") if i.key.endswith("/src")]
        # gc's grace period counts from the move, whatever the object's age.
        assert after > before
        with pytest.raises(ObjectNotFound):
            backend.move("objects/src", "trash/c/objects/src")

    def test_staging_dir_is_a_local_folder(self, backend: Backend) -> None:
        assert backend.staging_dir().is_dir()
