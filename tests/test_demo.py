"""``make demo`` tells its story to the end: run in a scratch copy of its inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def test_demo_runs_and_shows_each_step(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copy(ROOT / "store.toml", tmp_path / "store.toml")
    env = {k: v for k, v in os.environ.items() if k != "CAS_STORE"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "examples/demo.sh"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    out = done.stdout
    assert out.count("(run manifest): ok") == 1
    assert out.count("exit code 4") == 2
    assert "MISMATCH final_snapshot" in out and "M reports/q3.csv" in out
    assert "ghp_" not in out and '"GITHUB_TOKEN":"<redacted>"' in out
    assert "mcp_config: mcpServers.github.env.GITHUB_TOKEN" in out
    replayed = out.split("team_b cas diff")[1].split("==")[0]
    assert "final_snapshot" not in replayed and 'trajectory_id: "team-a-1"' in replayed
    assert "initial_snapshot: corrupt" in out and "trajectory:       ok" in out
