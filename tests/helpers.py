"""Helpers the test modules share: fresh store locations, the real ``cas`` command,
recorded runs from the example runner, and damage done to stored objects."""

from __future__ import annotations

import importlib.util
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
    """Run ``examples/simple_runner.py`` in a subprocess, as a runner would be run."""
    full_env = {k: v for k, v in os.environ.items() if k != "CAS_STORE"}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "simple_runner.py"),
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
    """Store a run manifest whose artifacts are ``digests`` (so each is a role that
    ``cas verify`` checks) and return its digest."""
    from casstore.format.manifest import Ref, RunManifest, encode

    artifacts = {f"r{i}": Ref(d, 0) for i, d in enumerate(digests)}
    return store.put_bytes(encode(RunManifest(artifacts=artifacts))).digest


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


# Runs one cas command in-process and reports its own peak RSS on stderr. VmHWM, not
# ru_maxrss: Linux carries ru_maxrss over from the forking parent (pytest) across exec.
MEASURE = """
import re, sys
from casstore.cli.main import run
code = run(sys.argv[1:])
status = open("/proc/self/status").read()
kib = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
sys.stderr.write(f"\\nmaxrss_kib={kib}\\n")
sys.exit(code)
"""


def run_measured(args: list[str], **kwargs: object) -> tuple[int, int]:
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, *args], stderr=subprocess.PIPE, text=True, **kwargs
    )  # type: ignore[call-overload]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("maxrss_kib=")]
    assert lines, proc.stderr
    return proc.returncode, int(lines[-1].split("=")[1])


def build_large_index(store: Store, count: int, content: bytes) -> str:
    """Give ``store`` a merged index naming ``count`` packed objects, written directly
    (their content is never stored): every entry is synthetic but one, ``content``,
    really packed. Returns that object's digest."""
    import struct

    import zstandard
    from blake3 import blake3

    from casstore.format import packindex as fmt

    frame = zstandard.ZstdCompressor().compress(content)
    pack = blake3(frame).digest()
    store.backend.write_bytes(layout.pack_key("blake3:" + pack.hex()), frame)
    real = blake3(content).digest()
    tail = struct.pack("<IQIII", 0, 0, len(frame), 0, len(content))
    step = (1 << 64) // count
    bits = fmt.fanout_bits(count + 1)
    buckets = [0] * (1 << bits)
    (store.backend.root / layout.INDEX).mkdir(exist_ok=True)  # type: ignore[attr-defined]
    path = store.backend.staging_dir() / "synthetic-index"
    hasher = blake3()
    with open(path, "wb") as out:
        shape = fmt.MergedLayout(bits, count + 1, 1)
        fanout_at = shape.fanout
        out.write(fmt.merged_header(shape) + pack + bytes(4 << bits))
        pending = [real + tail]
        for i in range(count):
            synthetic = (i * step + 1).to_bytes(8, "big") + bytes(24)
            if pending and real < synthetic:
                out.write(pending.pop())
                buckets[fmt.bucket_of(real, bits)] += 1
            out.write(synthetic + tail)
            buckets[(i * step + 1) >> (64 - bits)] += 1
        for entry in pending:
            out.write(entry)
            buckets[fmt.bucket_of(real, bits)] += 1
        out.seek(fanout_at)
        out.write(fmt.fanout_table(buckets))
    with open(path, "rb") as f:
        while piece := f.read(1 << 24):
            hasher.update(piece)
    key = layout.merged_index_key(count + 1, "blake3:" + hasher.hexdigest())
    os.replace(path, store.backend.root / key)  # type: ignore[attr-defined]
    return "blake3:" + real.hex()
