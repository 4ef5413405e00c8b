"""Helpers the test modules share: fresh store locations, the real ``cas`` command,
recorded runs from the example runner, and damage done to stored objects."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from casstore.format import layout
from casstore.store.objects import Store

BUCKET = "casstore-test"
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TOKEN = "ghp_plantedTokenThatMustNeverBeStored42"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_inputs(folder: Path, seed: int = 0, token: str = TOKEN) -> Path:
    """The example run's inputs (messages, agent config, MCP config, env.zip) in ``folder``."""
    _load("make_inputs").make_inputs(folder, seed, token)
    return folder


def run_example(
    cwd: Path,
    inputs: Path,
    output: Path,
    *flags: str,
    trajectory_id: str = "t1",
    model: str = "fake/echo-1",
    extra_args: str = '{"temperature": 0.7}',
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``examples/runner.py`` in a subprocess, as a runner would be run."""
    full_env = {k: v for k, v in os.environ.items() if k != "CAS_STORE"}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "runner.py"),
            "--trajectory-id",
            trajectory_id,
            "--initial-messages",
            str(inputs / "messages.json"),
            "--agent-config",
            str(inputs / "agent_config.json"),
            "--orchestrator-model",
            model,
            "--orchestrator-extra-args",
            extra_args,
            "--mcp-config",
            str(inputs / "mcp.json"),
            "--initial-snapshot",
            str(inputs / "env.zip"),
            "--output",
            str(output),
            *flags,
        ],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def record_referencing(store: Store, *digests: str) -> str:
    """Store a record naming ``digests`` as references (a run manifest's shape, the way
    closures, gc and fsck read it) and return its digest."""
    refs = {f"r{i}": {"digest": d, "size": 0} for i, d in enumerate(digests)}
    record = {"casstore": "run-manifest", "schema_version": "1.0", **refs}
    return store.put_bytes(json.dumps(record, separators=(",", ":")).encode()).digest


def new_store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store location on backend ``kind`` (local, memory or s3)."""
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


def flip_stored_byte(store: Store, digest: str) -> None:
    """Flip one stored byte of ``digest``: the last of a loose object, or one in the
    middle of the compressed block of a pack that holds it."""
    where = store.packs.get(digest)
    if where is None:
        key = layout.object_key(digest)
        stored = bytearray(store.backend.read_bytes(key))
        stored[-1] ^= 0x01
    else:
        key = where.key
        stored = bytearray(store.backend.read_bytes(key))
        stored[where.block_offset + where.block_length // 2] ^= 0x01
    store.backend.write_bytes(key, bytes(stored))
