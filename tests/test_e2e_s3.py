"""End to end on a real S3 server: team A records runs and pushes them to a bucket;
team B, with an empty store and nothing but a digest, verifies, diffs, replays."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from casstore.format.manifest import RunManifest, decode_as
from casstore.store.open import open_store
from tests.helpers import BUCKET, ROOT, flip_stored_byte, make_inputs, run_cas, run_example
from tests.s3_server import S3Server


def _team(folder: Path, bucket_url: str) -> Path:
    folder.mkdir()
    (folder / "store.toml").write_text(f'[store]\n\n[remotes.shared]\nurl = "{bucket_url}"\n')
    assert run_cas("init", cwd=folder).returncode == 0
    return folder


def _cas_json(*args: str, cwd: Path, code: int = 0) -> Any:
    done = run_cas(*args, "--json", cwd=cwd)
    assert done.returncode == code, done.stderr.decode()
    return json.loads(done.stdout)


def test_two_teams_share_runs_through_a_bucket(s3_server: S3Server, tmp_path: Path) -> None:
    bucket_url = f"s3://{BUCKET}/e2e-{uuid.uuid4().hex}"
    assert run_cas("--store", bucket_url, "init", cwd=tmp_path).returncode == 0

    # Team A records two runs with the example runner and pushes them.
    team_a = _team(tmp_path / "team-a", bucket_url)
    inputs_a = make_inputs(team_a / "inputs")
    digests = []
    for seed in ("1", "2"):
        out = team_a / f"run{seed}" / "trajectory.json"
        done = run_example(team_a, inputs_a, out, "--seed", seed, "--deterministic")
        assert done.returncode == 0, done.stderr
        assert "warning" not in done.stderr.lower(), done.stderr
        digests.append(done.stdout.strip())
    pushed = run_cas("push", *digests, "--to", "shared", cwd=team_a)
    assert pushed.returncode == 0, pushed.stderr.decode()
    run_a = digests[0]

    # Team B: an empty store, the same kind of inputs, and only run A's digest.
    team_b = _team(tmp_path / "team-b", bucket_url)
    verified = _cas_json("--store", bucket_url, "verify", run_a, cwd=team_b)
    assert verified["status"] == "ok"
    inputs_b = make_inputs(team_b / "inputs")
    own = run_example(
        team_b,
        inputs_b,
        team_b / "mine" / "trajectory.json",
        "--seed",
        "3",
        "--deterministic",
        trajectory_id="b1",
    )
    assert own.returncode == 0, own.stderr
    run_b = own.stdout.strip()
    assert run_cas("pull", run_a, "--from", "shared", cwd=team_b).returncode == 0
    diff = _cas_json("diff", run_a, run_b, cwd=team_b)
    changed = {(d["role"], d["path"]) for d in diff["differences"]}
    assert ("parameters", "seed") in changed and ("parameters", "trajectory_id") in changed
    assert not {role for role, _ in changed} & {"initial_snapshot", "mcp_config", "agent_config"}
    assert "final_snapshot" in diff["snapshots"]

    # Replay run A and run the printed command: a deterministic run repeats exactly.
    plan = _cas_json("replay", run_a, "--into", str(team_b / "replay"), cwd=team_b)
    command = plan["command_line"]
    # Replayed outside the runner's checkout: the command names the script from it.
    assert command.startswith('python "${CODE_ROOT}"/examples/simple_runner.py ')
    redone = subprocess.run(
        ["bash", "-c", command],
        cwd=team_b,
        env={
            "PYTHONPATH": str(ROOT),
            "CODE_ROOT": str(ROOT),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert redone.returncode == 0, redone.stderr
    again = _cas_json("diff", run_a, redone.stdout.strip(), cwd=team_b)
    assert again["snapshots"] == {}
    roles = {d["role"] for d in again["differences"]}
    assert roles <= {"parameters", "trajectory"}

    # One flipped byte in the bucket: verify exits 4 and names the damaged role.
    bucket = open_store(bucket_url, cache=False)
    manifest = decode_as(RunManifest, bucket.get_bytes(run_a))
    assert manifest.initial_snapshot is not None
    database = next(
        e
        for e in json.loads(bucket.get_bytes(manifest.initial_snapshot.digest))["entries"]
        if e["path"] == "data/sales.db"
    )
    assert database["digest"] not in bucket.packs  # over 1 MiB: a loose object
    flip_stored_byte(bucket, database["digest"])
    damaged = _cas_json("--store", bucket_url, "--no-cache", "verify", run_a, cwd=team_b, code=4)
    corrupt = {r["role"] for r in damaged["roles"] if r["status"] == "corrupt"}
    assert "initial_snapshot" in corrupt and "trajectory" not in corrupt
    text = run_cas("--store", bucket_url, "verify", run_a, cwd=team_b)
    assert text.returncode == 4
    assert b"initial_snapshot:" in text.stdout and b"corrupt" in text.stdout
