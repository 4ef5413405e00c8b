"""``cas manifest show`` and ``cas diff`` on run manifests: why two runs differ."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from casstore.cli.main import run
from casstore.format.manifest import decode_as
from casstore.store.objects import Store
from runner_hooks import RunRecorder, record_grading
from tests.helpers import TOKEN, make_inputs


def _record(store: Store, folder: Path, inputs: Path, *, mcp: Any = None, **params: Any) -> str:
    folder.mkdir(parents=True)
    trajectory = folder / "trajectory.json"
    trajectory.write_text(json.dumps({"steps": params.get("seed")}))
    defaults: dict[str, Any] = {
        "trajectory_id": "t1",
        "agent_config": inputs / "agent_config.json",
        "orchestrator_model": "fake/echo-1",
        "orchestrator_extra_args": {"temperature": 0, "seed": params.get("seed", 1)},
        "initial_messages": inputs / "messages.json",
        "seed": 1,
        "deterministic": True,
    }
    with RunRecorder(store=store, code_root=folder, **{**defaults, **params}) as recorder:
        recorder.attach_snapshot("initial", inputs / "env.zip")
        recorder.attach_mcp_config(mcp if mcp is not None else inputs / "mcp.json")
        return recorder.finish(trajectory)


@pytest.fixture
def two_runs(tmp_path: Path, local_store: Store) -> tuple[str, str, Path]:
    inputs = make_inputs(tmp_path / "inputs")
    a = _record(local_store, tmp_path / "a", inputs)
    # Run b: another seed and model, a changed MCP arg, message, agent config value and file.
    other = make_inputs(tmp_path / "other")
    mcp = json.loads((other / "mcp.json").read_text())
    mcp["mcpServers"]["filesystem"]["args"][1] = "/data"
    mcp["mcpServers"]["github"]["env"]["GITHUB_TOKEN"] = "another-token-value"
    messages = json.loads((other / "messages.json").read_text())
    messages[1]["content"] = "Fix the totals in reports/q4.csv."
    (other / "messages.json").write_text(json.dumps(messages))
    config = json.loads((other / "agent_config.json").read_text())
    config["agent_config_values"]["max_steps"] = 8
    (other / "agent_config.json").write_text(json.dumps(config))
    with zipfile.ZipFile(other / "env.zip", "a") as z:
        z.writestr("reports/extra.csv", "x\n")
    b = _record(
        local_store,
        tmp_path / "b",
        other,
        mcp=mcp,
        seed=2,
        orchestrator_model="fake/echo-2",
        trajectory_id="t2",
    )
    return a, b, tmp_path


def test_diff_of_two_manifests_names_every_differing_input(
    two_runs: tuple[str, str, Path], local_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, _ = two_runs
    assert run(["--store", local_store.url, "diff", a, b, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    found = {(d["role"], d["path"]): (d.get("old"), d.get("new")) for d in result["differences"]}
    assert found[("parameters", "seed")] == (1, 2)
    assert found[("parameters", "orchestrator_model")] == ("fake/echo-1", "fake/echo-2")
    assert found[("parameters", "orchestrator_extra_args.seed")] == (1, 2)
    assert found[("parameters", "agent_config_values.max_steps")] == (4, 8)
    assert found[("mcp_config", "mcpServers.filesystem.args[1]")] == ("/workspace", "/data")
    assert found[("initial_messages", "[1].content")][1] == "Fix the totals in reports/q4.csv."
    assert found[("agent_config", "agent_config_values.max_steps")] == (4, 8)
    # A secret that changed is not a difference anyone can see: both sides are redacted.
    assert not any("GITHUB_TOKEN" in path for _, path in found)
    assert ("parameters", "deterministic") not in found
    tree = result["snapshots"]["initial_snapshot"]
    assert (tree["added"], tree["removed"], tree["modified"]) == (1, 0, 0)
    assert tree["changes"][0]["path"] == "reports/extra.csv"
    assert result["unavailable"] == {}

    assert run(["--store", local_store.url, "diff", a, b]) == 0
    text = capsys.readouterr().out
    assert f"a: {a}" in text and f"b: {b}" in text
    assert "seed: 1 -> 2" in text
    assert 'mcpServers.filesystem.args[1]: "/workspace" -> "/data"' in text
    assert "+ reports/extra.csv" in text


def test_diff_of_a_run_with_itself_and_of_sidecars(
    two_runs: tuple[str, str, Path], local_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _, tmp_path = two_runs
    assert run(["--store", local_store.url, "diff", a, a]) == 0
    assert "no differences" in capsys.readouterr().out
    sidecar_a = str(tmp_path / "a" / "trajectory.manifest.json")
    sidecar_b = str(tmp_path / "b" / "trajectory.manifest.json")
    assert run(["--store", local_store.url, "diff", sidecar_a, sidecar_b, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["a"] == a


def test_diff_refuses_a_tree_against_a_manifest(
    two_runs: tuple[str, str, Path], local_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _, _ = two_runs
    run_a = decode_as_run(local_store, a)
    assert run_a.initial_snapshot is not None
    code = run(["--store", local_store.url, "diff", a, run_a.initial_snapshot.digest])
    assert code == 2
    err = capsys.readouterr().err
    assert "two snapshots (stored trees, folders or archives), two runs, two gradings" in err
    assert "got a run-manifest and a tree" in err


def decode_as_run(store: Store, digest: str) -> Any:
    from casstore.format.manifest import RunManifest

    return decode_as(RunManifest, store.get_bytes(digest))


def test_manifest_show_text_and_json(
    two_runs: tuple[str, str, Path], local_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _, tmp_path = two_runs
    assert run(["--store", local_store.url, "manifest", "show", a]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"run manifest {a}\n")
    assert "fake/echo-1" in text and "final_snapshot       (absent)" in text
    snapshot = decode_as_run(local_store, a).initial_snapshot
    assert f"initial_snapshot     {snapshot.digest}" in text
    sidecar = str(tmp_path / "a" / "trajectory.manifest.json")
    assert run(["manifest", "show", "--json", sidecar]) == 0  # a sidecar needs no store
    shown = json.loads(capsys.readouterr().out)
    assert shown["digest"] == a and shown["casstore"] == "run-manifest"
    assert shown["initial_snapshot"]["digest"] == snapshot.digest
    assert TOKEN not in json.dumps(shown)


def test_manifest_show_of_a_grading_record(
    two_runs: tuple[str, str, Path], local_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _, tmp_path = two_runs
    grades = tmp_path / "grades.json"
    grades.write_text("[1, 0]")
    digest = record_grading(a, store=local_store, grades=grades, score=0.5, judge_model="j")
    assert run(["--store", local_store.url, "manifest", "show", digest]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"grading record {digest}\n")
    assert f"run                  {a}" in text and "0.5" in text


def test_manifest_show_errors(
    tmp_path: Path, local_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    blob = local_store.put_bytes(b"just bytes").digest
    assert run(["--store", local_store.url, "manifest", "show", blob]) == 1
    assert "not a run manifest, grading record or suite" in capsys.readouterr().err
    future = tmp_path / "future.manifest.json"
    future.write_bytes(b'{"casstore":"run-manifest","schema_version":"3.0","new":1}')
    assert run(["manifest", "show", str(future)]) == 1
    err = capsys.readouterr().err
    assert "schema version 3.0" in err and err.count("\n") == 1
    assert run(["--store", local_store.url, "manifest", "show", "blake3:" + "0" * 64]) == 3
