"""Shared fixtures. ``store`` is parametrised over every backend: the conformance
suite in ``test_store_conformance.py`` runs unchanged against each of them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from casstore.store.objects import Store
from casstore.store.open import init_store
from tests.s3_server import S3Server, server_environment, start_seaweedfs

BACKENDS = ["local", "memory", "s3"]
BUCKET = "casstore-test"


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
    kind = request.param
    if kind == "local":
        yield str(tmp_path / "store")
    elif kind == "s3":
        request.getfixturevalue("s3_server")
        yield f"s3://{BUCKET}/{uuid.uuid4().hex}"
    elif kind == "memory":
        url = f"memory://casstore-test-{uuid.uuid4().hex}"
        yield url
        import fsspec

        fs = fsspec.filesystem("memory")
        if fs.exists(url):
            fs.rm(url, recursive=True)
    else:  # pragma: no cover - a new backend must be wired here
        raise AssertionError(kind)


@pytest.fixture
def store(store_url: str) -> Store:
    created, _ = init_store(store_url)
    return created


@pytest.fixture
def local_store(tmp_path: Path) -> Store:
    created, _ = init_store(str(tmp_path / "store"))
    return created


def run_cas(
    *args: str,
    cwd: Path | None = None,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run the real ``cas`` command in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if k != "CAS_STORE"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "casstore", *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        env=full_env,
        timeout=600,
    )
