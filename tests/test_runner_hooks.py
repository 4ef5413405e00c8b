"""runner_hooks: flags, RunRecorder, sidecars, best effort, secrets, grading."""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import warnings
from pathlib import Path

import pytest

import casstore
from casstore import BackendError, GradingRecord, Ref, RunManifest, Store, hash_bytes
from casstore.format.manifest import decode, decode_as
from casstore.graph.closure import walk
from runner_hooks import (
    RecordingWarning,
    ReproducibilityArgsError,
    RunRecorder,
    StoreUnavailableWarning,
    add_reproducibility_args,
    apply_determinism,
    record_grading,
    sidecar_path,
)
from tests.helpers import EXAMPLES, TOKEN, make_inputs, run_example

# -- flags ---------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runner")
    parser.add_argument("--orchestrator-model")
    add_reproducibility_args(parser)
    return parser


def test_deterministic_without_seed_is_a_parser_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["--deterministic"])
    assert exit_info.value.code == 2
    assert "--deterministic requires --seed" in capsys.readouterr().err
    args = _parser().parse_args(["--seed", "3", "--deterministic", "--cas-store", "s3://b/p"])
    assert (args.seed, args.deterministic, args.cas_store) == (3, True, "s3://b/p")
    with pytest.raises(ReproducibilityArgsError):
        apply_determinism(argparse.Namespace(seed=None, deterministic=True), {})


def test_apply_determinism_forces_temperature_and_keeps_the_rest() -> None:
    extra = {"temperature": 0.8, "top_p": 0.9, "reasoning": {"effort": "high"}}
    before = copy.deepcopy(extra)
    out = apply_determinism(_parser().parse_args(["--seed", "11", "--deterministic"]), extra)
    assert out == {"temperature": 0, "top_p": 0.9, "reasoning": {"effort": "high"}, "seed": 11}
    assert extra == before
    out["reasoning"]["effort"] = "low"
    assert extra == before  # a deep copy: nested values are not shared
    seeded = apply_determinism(_parser().parse_args(["--seed", "5"]), extra)
    assert seeded == {**before, "seed": 5}
    assert apply_determinism(_parser().parse_args([]), None) == {}


# -- recording a run --------------------------------------------------------------


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    return make_inputs(tmp_path / "inputs")


def _all_stored_bytes(store: Store) -> list[bytes]:
    return [store.get_bytes(d) for d in store.iter_digests()]


def test_example_runner_records_a_complete_manifest(
    tmp_path: Path, inputs: Path, local_store: Store
) -> None:
    out = tmp_path / "run" / "trajectory.json"
    done = run_example(
        tmp_path,
        inputs,
        out,
        "--seed",
        "7",
        "--deterministic",
        "--cas-store",
        local_store.url,
        extra_args=json.dumps({"temperature": 0.7, "api_key": "sk-" + "x" * 24}),
    )
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip()
    sidecar = out.with_name("trajectory.manifest.json")
    assert sidecar == sidecar_path(out)
    data = sidecar.read_bytes()
    assert hash_bytes(data) == digest
    assert local_store.get_bytes(digest) == data
    run = decode_as(RunManifest, data)
    assert run.trajectory_id == "t1" and run.orchestrator_model == "fake/echo-1"
    assert run.seed == 7 and run.deterministic
    assert run.orchestrator_extra_args == {"temperature": 0, "seed": 7, "api_key": "<redacted>"}
    assert run.agent_config_id == "loop-v1"
    assert run.agent_config_values == {"max_steps": 4, "timeout_s": 600}
    assert run.code.python_version and run.code.casstore_version == casstore.__version__
    assert run.trajectory == Ref(*casstore.hash_file(out))
    assert run.initial_snapshot is not None and run.final_snapshot is not None
    assert run.initial_snapshot.digest == casstore.tree_digest(inputs / "env.zip").digest
    assert run.final_snapshot.digest == casstore.tree_digest(out.with_suffix(".final.zip")).digest
    messages = json.loads((inputs / "messages.json").read_text())
    assert run.initial_messages == Ref(
        hash_bytes(casstore.canonical_json(messages)), len(casstore.canonical_json(messages))
    )
    # Everything the manifest references is in the store.
    closure = walk(local_store, [digest])
    assert not closure.missing
    assert set(run.roles()) == {
        "agent_config",
        "initial_messages",
        "mcp_config",
        "initial_snapshot",
        "final_snapshot",
        "trajectory",
        "packages",
    }
    for stored in [*_all_stored_bytes(local_store), data]:
        assert TOKEN.encode() not in stored
        assert b"sk-xxxxxxxx" not in stored


def test_runner_integration_is_under_15_lines() -> None:
    lines = (EXAMPLES / "simple_runner.py").read_text().splitlines()
    assert 0 < sum(line.rstrip().endswith("# casstore") for line in lines) < 15


def test_same_inputs_same_seed_same_digests_different_seed_differs(
    tmp_path: Path, inputs: Path, local_store: Store
) -> None:
    runs = {}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        out = tmp_path / name / "trajectory.json"
        done = run_example(
            tmp_path, inputs, out, "--seed", seed, "--deterministic", "--cas-store", local_store.url
        )
        assert done.returncode == 0, done.stderr
        runs[name] = decode_as(RunManifest, local_store.get_bytes(done.stdout.strip()))
    assert runs["a"].final_snapshot == runs["b"].final_snapshot
    assert runs["a"].trajectory == runs["b"].trajectory
    assert runs["a"].final_snapshot != runs["c"].final_snapshot


def _record(store: object, tmp_path: Path, inputs: Path, **kwargs: object) -> RunRecorder:
    tmp_path.mkdir(parents=True, exist_ok=True)
    trajectory = tmp_path / "trajectory.json"
    trajectory.write_text('{"messages": []}')
    recorder = RunRecorder(
        store=store,  # type: ignore[arg-type]
        trajectory_id="t9",
        agent_config=inputs / "agent_config.json",
        orchestrator_model="m",
        orchestrator_extra_args={"temperature": 0.2, "headers": {"x-api-key": TOKEN}},
        initial_messages=str(inputs / "messages.json"),
        code_root=tmp_path,
        **kwargs,  # type: ignore[arg-type]
    )
    recorder.attach_snapshot("initial", inputs / "env.zip")
    recorder.attach_mcp_config(inputs / "mcp.json")
    recorder.attach_artifact("log", inputs / "messages.json")
    recorder.finish(trajectory)
    return recorder


def test_unattached_snapshot_is_absent_and_no_git_is_empty(
    tmp_path: Path, inputs: Path, local_store: Store
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recorder = _record(local_store, tmp_path, inputs)
    run = recorder.manifest
    assert run is not None and recorder.digest is not None
    assert run.final_snapshot is None and run.orchestrator_config is None
    assert run.code.git_sha == "" and run.code.git_dirty is None
    assert set(run.artifacts) == {"log"}
    assert local_store.get_bytes(recorder.digest) == casstore.encode_record(run)


def test_git_commit_dirty_flag_and_lock_file(
    tmp_path: Path, inputs: Path, local_store: Store
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "uv.lock").write_text("version = 1\n")

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=repo,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", "uv.lock")
    git("commit", "-q", "-m", "lock")
    recorder = _record(local_store, repo, inputs)
    assert recorder.manifest is not None
    code = recorder.manifest.code
    assert code.git_sha == git("rev-parse", "HEAD") and code.git_dirty is False
    assert code.lock_file_name == "uv.lock"
    assert code.lock_file is not None
    assert local_store.get_bytes(code.lock_file.digest) == b"version = 1\n"
    (repo / "uv.lock").write_text("version = 2\n")
    assert _record(local_store, repo, inputs).manifest.code.git_dirty is True  # type: ignore[union-attr]


def test_unreachable_store_warns_once_and_the_sidecar_has_the_same_digests(
    tmp_path: Path, inputs: Path, local_store: Store
) -> None:
    stored = _record(local_store, tmp_path / "ok", inputs)
    with pytest.warns(StoreUnavailableWarning) as caught:
        offline = _record(str(tmp_path / "not-a-store"), tmp_path / "offline", inputs)
    assert len([w for w in caught if issubclass(w.category, RecordingWarning)]) == 1
    assert stored.manifest is not None and offline.manifest is not None
    assert stored.manifest.roles() == offline.manifest.roles()
    sidecar = (tmp_path / "offline" / "trajectory.manifest.json").read_bytes()
    assert hash_bytes(sidecar) == offline.digest
    assert TOKEN.encode() not in sidecar
    with pytest.raises(casstore.NotAStore):
        _record(str(tmp_path / "not-a-store"), tmp_path / "strict", inputs, strict=True)


def test_store_failing_mid_run_costs_one_warning(
    tmp_path: Path, inputs: Path, local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _record(local_store, tmp_path / "ok", inputs)

    def broken(*args: object, **kwargs: object) -> None:
        raise BackendError("connection reset by peer")

    monkeypatch.setattr(Store, "put_tree", broken)
    monkeypatch.setattr(Store, "put_bytes", broken)
    monkeypatch.setattr(Store, "put_file", broken)
    with pytest.warns(StoreUnavailableWarning, match="connection reset") as caught:
        offline = _record(local_store, tmp_path / "offline", inputs)
    assert len(caught) == 1
    assert reference.manifest is not None and offline.manifest is not None
    assert offline.manifest.roles() == reference.manifest.roles()
    with pytest.raises(BackendError):
        _record(local_store, tmp_path / "strict", inputs, strict=True)


def test_unreadable_input_is_recorded_absent_with_a_warning(
    tmp_path: Path, inputs: Path, local_store: Store
) -> None:
    recorder = RunRecorder(store=local_store, code_root=tmp_path)
    with pytest.warns(RecordingWarning, match="final snapshot not recorded"):
        assert recorder.attach_snapshot("final", tmp_path / "missing.zip") is None
    trajectory = tmp_path / "t.json"
    trajectory.write_text("{}")
    recorder.finish(trajectory)
    assert recorder.manifest is not None and recorder.manifest.final_snapshot is None
    strict = RunRecorder(store=local_store, code_root=tmp_path, strict=True)
    with pytest.raises(casstore.CasError, match="No such file"):
        strict.attach_snapshot("final", tmp_path / "missing.zip")


def test_other_snapshot_roles_and_context_manager(
    tmp_path: Path, inputs: Path, local_store: Store
) -> None:
    trajectory = tmp_path / "t.json"
    trajectory.write_text("{}")
    with RunRecorder(store=local_store, code_root=tmp_path) as recorder:
        recorder.attach_snapshot("after_setup", inputs / "env.zip")
        digest = recorder.finish(trajectory)
    run = decode_as(RunManifest, local_store.get_bytes(digest))
    assert set(run.snapshots) == {"after_setup"}
    assert run.snapshot("after_setup") is not None and run.snapshot("initial") is None
    with (
        pytest.warns(RecordingWarning, match="without RunRecorder.finish"),
        RunRecorder(store=local_store, code_root=tmp_path),
    ):
        pass


# -- grading -----------------------------------------------------------------------


def test_record_grading(tmp_path: Path, inputs: Path, local_store: Store) -> None:
    run = _record(local_store, tmp_path, inputs)
    assert run.digest is not None and run.manifest is not None
    grades = tmp_path / "grades.json"
    grades.write_text(json.dumps({"scores": [1, 0, 1]}))
    digest = record_grading(
        run.digest,
        store=local_store,
        grades=grades,
        score=0.667,
        judge_model="judge-1",
        grading_settings={"judge_model": "judge-1", "api_key": TOKEN},
        verifiers=[{"name": "totals", "kind": "exact"}],
        scoring_config={"aggregate": "mean"},
        code_root=tmp_path,
    )
    record = decode(local_store.get_bytes(digest))
    assert isinstance(record, GradingRecord)
    assert record.run == Ref(run.digest, len(local_store.get_bytes(run.digest)))
    assert record.score == 0.667 and record.judge_model == "judge-1"
    assert record.baseline_role == "initial"
    assert record.baseline_snapshot == run.manifest.initial_snapshot
    assert record.eval_configs is None and record.grades is not None
    assert (tmp_path / "grades.grading.json").read_bytes() == local_store.get_bytes(digest)
    # The record's closure reaches the whole run.
    assert set(walk(local_store, [digest]).order) >= set(walk(local_store, [run.digest]).order)
    for stored in _all_stored_bytes(local_store):
        assert TOKEN.encode() not in stored
    # A sidecar names the run as well as its digest does.
    by_sidecar = record_grading(
        tmp_path / "trajectory.manifest.json", store=local_store, grades=grades, score=0.667
    )
    assert decode_as(GradingRecord, local_store.get_bytes(by_sidecar)).run == record.run


def test_a_json_file_holding_a_string_is_read_once(tmp_path: Path, local_store: Store) -> None:
    prompt = tmp_path / "prompt.json"
    prompt.write_text('"Fix the failing test."')
    trajectory = tmp_path / "t.json"
    trajectory.write_text("{}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        recorder = RunRecorder(store=local_store, initial_messages=prompt, code_root=tmp_path)
        recorder.finish(trajectory)
    assert recorder.manifest is not None and recorder.manifest.initial_messages is not None
    stored = local_store.get_bytes(recorder.manifest.initial_messages.digest)
    assert stored == b'"Fix the failing test."'
