"""``make demo`` tells its story to the end: run in a scratch copy of its inputs."""

from __future__ import annotations

import os
import re
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
    # Each orchestrated run was recorded whole and graded.
    assert re.search(r"runs/team-a-1 .* score \d", out) and "runs/team-a-2" in out
    for role in ("initial_snapshot", "final_snapshot", "mcp_config", "config:agent_effective"):
        assert re.search(rf"^  {role}: +ok", out, re.M), role
    # The replay, run as printed and recorded as the orchestrator records, reproduced
    # the run: every input, parameter, snapshot and output the same.
    replayed = out.split("team_b cas diff")[1].split("==")[0]
    assert "no differences" in replayed
    assert re.search(r"^  initial_snapshot: +corrupt", out, re.M)
    assert re.search(r"^  trajectory: +ok", out, re.M)
    assert done.stderr == "", done.stderr
