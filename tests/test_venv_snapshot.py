"""A real virtual environment as a snapshot: stored, materialised, and replayed as a
run's input, its interpreter link resolving as the original did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from casstore.cli.main import run
from casstore.store.open import init_store
from casstore.trees.ingest import tree_digest
from runner_hooks import RunRecorder


def test_a_virtual_environment_round_trips_and_replays(tmp_path: Path) -> None:
    venv = tmp_path / "env" / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    assert python.is_symlink()
    store, _ = init_store(str(tmp_path / "store"))
    info = store.put_tree(tmp_path / "env")
    assert info.files > 100  # pip and its vendored packages

    out = tmp_path / "out"
    store.get_tree(info.digest, out)
    copy = out / "venv" / "bin" / "python"
    assert os.readlink(copy) == os.readlink(python)  # absolute or relative, verbatim
    assert os.path.realpath(copy) == os.path.realpath(python)
    assert tree_digest(out).digest == info.digest
    done = subprocess.run([str(copy), "-c", "print(6 * 7)"], capture_output=True, text=True)
    assert done.stdout.strip() == "42"
    for name in ("x.zip", "x.tar.gz"):
        store.get_tree(info.digest, tmp_path / name)
        assert tree_digest(tmp_path / name).digest == info.digest

    trajectory = tmp_path / "trajectory.json"
    trajectory.write_text('{"messages": []}')
    with RunRecorder(store=store, trajectory_id="venv-run") as recorder:
        recorder.attach_snapshot("initial", tmp_path / "env")
        digest = recorder.finish(trajectory)
    assert run(["--store", store.url, "replay", digest, "--into", str(tmp_path / "replay")]) == 0
    replayed = tmp_path / "replay" / "initial" / "venv" / "bin" / "python"
    assert os.path.realpath(replayed) == os.path.realpath(python)
    assert tree_digest(tmp_path / "replay" / "initial").digest == info.digest
