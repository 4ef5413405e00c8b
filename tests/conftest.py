"""Shared fixtures. ``store`` is parametrised over every backend: the conformance
suite in ``test_store_conformance.py`` runs unchanged against each of them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from casstore.store.objects import Store
from casstore.store.open import init_store
from tests.helpers import BUCKET, new_store_url
from tests.s3_server import S3Server, server_environment, start_seaweedfs

BACKENDS = ["local", "memory", "s3"]

#: Set in every process of a `make mutants` run (docs/MUTANTS.md), which runs the tests
#: once per mutant: a mutant is killed by the first failure, so shrinking that failure
#: to a minimal example is time spent on nothing.
MUTATING = "MUTANT_UNDER_TEST" in os.environ
if MUTATING:
    settings.register_profile("mutants", phases=[Phase.explicit, Phase.reuse, Phase.generate])
    settings.load_profile("mutants")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under mutation testing, the tests of a mutant run fastest first (by the
    durations mutmut recorded): most mutants die in the first test that reaches them."""
    stats = Path("mutmut-stats.json")
    if MUTATING and stats.exists():
        durations = json.loads(stats.read_text())["duration_by_test"]
        items.sort(key=lambda item: durations.get(item.nodeid, 0.0))


@pytest.fixture(autouse=True)
def _isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test sees the developer's store.toml, $CAS_STORE or cache folder."""
    monkeypatch.delenv("CAS_STORE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS for the whole session, reached through the standard AWS variables."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        with server_environment(server):
            import s3fs

            s3fs.S3FileSystem(**server.storage_options()).mkdir(BUCKET)
            yield server
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL for each backend."""
    yield from new_store_url(request.param, request, tmp_path)


@pytest.fixture
def store(store_url: str) -> Store:
    created, _ = init_store(store_url)
    return created


@pytest.fixture
def local_store(tmp_path: Path) -> Store:
    created, _ = init_store(str(tmp_path / "store"))
    return created
