"""The store contract (``casstore.testing.store``), run unchanged on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from casstore.testing.store import StoreTests
from tests.helpers import new_store_url


class TestLocalStore(StoreTests):
    @pytest.fixture
    def store_url(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
        yield from new_store_url("local", request, tmp_path)


class TestMemoryStore(StoreTests):
    @pytest.fixture
    def store_url(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
        yield from new_store_url("memory", request, tmp_path)


class TestS3Store(StoreTests):
    @pytest.fixture
    def store_url(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
        yield from new_store_url("s3", request, tmp_path)
