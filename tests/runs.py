"""Recorded runs for the tests: the example inputs and the example runner, for real."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from casstore.store.objects import Store

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
