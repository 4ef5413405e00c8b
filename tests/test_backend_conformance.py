"""The backend contract (``casstore.testing.backend``), run on every backend: local,
memory, a real S3 server (SeaweedFS), and the read-only wrapper."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from casstore.backends import open_backend
from casstore.backends.base import Backend
from casstore.backends.local import LocalBackend
from casstore.backends.readonly import ReadOnlyBackend
from casstore.testing.backend import BackendTests
from tests.helpers import BUCKET, new_store_url


def _backdate(backend: Backend, key: str) -> None:
    """A local key made a day old, as a file written yesterday would be."""
    assert isinstance(backend, LocalBackend)
    day_ago = time.time() - 86400
    os.utime(backend.root / key, (day_ago, day_ago))


class TestLocalBackend(BackendTests):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Backend:
        return open_backend(str(tmp_path / "store"))

    def make_old(self, backend: Backend, key: str) -> None:
        _backdate(backend, key)

    def test_temp_files_beside_keys_are_hidden(self, backend: Backend) -> None:
        # Refs are replaced through a temp file in their own folder: never a key.
        assert isinstance(backend, LocalBackend)
        backend.write_bytes("refs/tags/a", b"x")
        (backend.root / "refs" / "tags" / ".a.tmp-123").write_bytes(b"half")
        assert list(backend.list("refs")) == ["refs/tags/a"]
        assert [i.key for i in backend.list_detailed("refs")] == ["refs/tags/a"]


class TestMemoryBackend(BackendTests):
    @pytest.fixture
    def backend(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
        for url in new_store_url("memory", request, tmp_path):
            yield open_backend(url)


class TestS3Backend(BackendTests):
    @pytest.fixture
    def backend(self, s3_server: object) -> Backend:
        return open_backend(f"s3://{BUCKET}/{uuid.uuid4().hex}")


class TestReadOnlyBackend(BackendTests):
    writable = False

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Backend:
        return ReadOnlyBackend(open_backend(str(tmp_path / "store")))

    def writer(self, backend: Backend) -> Backend:
        assert isinstance(backend, ReadOnlyBackend)
        return backend.inner

    def make_old(self, backend: Backend, key: str) -> None:
        _backdate(backend, key)
