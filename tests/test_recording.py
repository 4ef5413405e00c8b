"""Recording runs in a real harness: an orchestrator in any language (``cas record``), a
runner's own command line replayed, every input that moves a score, and nothing lost
when the store is away."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

import casstore
from casstore import RunManifest, Store, StoreUnavailableWarning, record_run
from casstore.cli.main import run
from casstore.errors import BackendError
from casstore.format.manifest import decode_as
from casstore.runs.redaction import MARKER
from casstore.store.open import init_store, open_store
from runner_hooks import RunRecorder, add_reproducibility_args, apply_determinism
from tests.helpers import EXAMPLES, ROOT, make_inputs, run_cas

SECRET = "sk-proj-plantedOpenAIKeyThatMustNeverBeStored"


def _manifest(store: Store, digest: str) -> RunManifest:
    return decode_as(RunManifest, store.get_bytes(digest))


def _all_stored_bytes(store: Store) -> list[bytes]:
    return [store.get_bytes(d) for d in store.iter_digests()]


def _trajectory(folder: Path, text: str = "done") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "trajectory.json"
    path.write_text(json.dumps({"messages": [text]}))
    return path


# -- an orchestrator in a shell script --------------------------------------------


def test_shell_orchestrator_records_the_whole_run_with_cas_record(tmp_path: Path) -> None:
    """examples/orchestrator.sh: environment, runner (python -m), final snapshot, then
    only `cas record` and files; the runner's own manifest is completed, not doubled."""
    url = str(tmp_path / "store")
    init_store(url)
    task = make_inputs(tmp_path / "task")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "CAS_STORE"}
    env.update(
        CAS_STORE=url,
        PYTHON=sys.executable,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    done = subprocess.run(
        ["bash", str(EXAMPLES / "orchestrator.sh"), str(task), str(out), "orch-1", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    digest = done.stdout.split()[0]
    store = open_store(url)
    # One ref for the run: the runner's partial manifest's ref moved to the whole run.
    assert store.refs("runs/*") == {"runs/orch-1": digest}
    manifest = _manifest(store, digest)
    for role in ("initial_snapshot", "final_snapshot", "mcp_config", "trajectory"):
        assert manifest.roles().get(role) is not None, role
    assert manifest.initial_messages is not None and manifest.agent_config is not None
    assert "agent_effective" in manifest.configs
    assert "orchestrator_extra_args" in manifest.configs
    final = manifest.final_snapshot
    assert final is not None
    assert casstore.tree_digest(out / "environment").digest == final.digest
    invocation = manifest.invocation
    assert invocation is not None
    assert invocation.program == ["python", "-m", "runner.main"]
    assert invocation.cwd == "examples/agents"
    assert set(invocation.files.values()) == {
        "initial_messages",
        "agent_config",
        "config:orchestrator_extra_args",
        "trajectory",
    }
    assert list(invocation.placeholders.values()) == ["MCP_GATEWAY_URL"]
    assert run_cas("verify", digest, env={"CAS_STORE": url}).returncode == 0
    # The grader recorded what it scored, against the whole run.
    (grading,) = store.refs("gradings/*").values()
    record = casstore.decode_record(store.get_bytes(grading))
    assert isinstance(record, casstore.GradingRecord) and record.run.digest == digest
    assert record.judge_model == "fake/judge-1"


def test_cas_record_from_files_alone(tmp_path: Path, local_store: Store) -> None:
    task = make_inputs(tmp_path / "task")
    trajectory = _trajectory(tmp_path / "out")
    code = run(
        [
            "--store",
            local_store.url,
            "record",
            "--trajectory",
            str(trajectory),
            "--snapshot",
            f"initial={task / 'env.zip'}",
            "--mcp-config",
            str(task / "mcp.json"),
            "--config",
            f"task_fields={task / 'extra_args.json'}",
            "--param",
            "temperature=0",
            "--model",
            "m1",
            "--trajectory-id",
            "cli-1",
            "--json",
            "--",
            "node",
            "agent.js",
            "--messages",
            str(task / "messages.json"),
        ]
    )
    assert code == 0
    manifest = _manifest(local_store, local_store.resolve("runs/cli-1"))
    assert manifest.orchestrator_extra_args == {"temperature": 0}
    assert manifest.orchestrator_model == "m1" and "task_fields" in manifest.configs
    assert manifest.invocation is not None
    assert manifest.invocation.program == ["node"]
    assert manifest.invocation.args[:1] == ["agent.js"]
    assert (tmp_path / "out" / "trajectory.manifest.json").exists()
    with pytest.raises(SystemExit) as exited:
        run(["--store", local_store.url, "record", "--snapshot", "x"])
    assert exited.value.code == 2  # no --trajectory
    assert run(["--store", local_store.url, "record", "--trajectory", str(trajectory),
                "--snapshot", "x"]) == 2  # fmt: skip


# -- every input that moves a score, secrets excepted -------------------------------


def _mcp(fs_root: str, key: str) -> dict[str, Any]:
    return {
        "mcpServers": {
            "fs": {"command": "mcp-fs", "env": {"APP_FS_ROOT": fs_root, "STATE_LOCATION": "/s"}},
            "llm": {"command": "mcp-llm", "env": {"OPENAI_API_KEY": key}},
        }
    }


def test_non_secret_mcp_settings_move_the_digest_secret_ones_never_stored(
    tmp_path: Path, local_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    def record(name: str, mcp: dict[str, Any]) -> str:
        return record_run(
            _trajectory(tmp_path / name), store=local_store, mcp_config=mcp, params={}
        ).digest

    a = record("a", _mcp("/srv/a", SECRET))
    b = record("b", _mcp("/srv/b", SECRET))
    c = record("c", _mcp("/srv/a", SECRET.replace("Key", "Kee")))
    run_a, run_b, run_c = (_manifest(local_store, d) for d in (a, b, c))
    assert run_a.mcp_config != run_b.mcp_config
    assert run_a.mcp_config == run_c.mcp_config  # only the secret differs: not recorded
    assert run(["--store", local_store.url, "diff", a, b]) == 0
    out = capsys.readouterr().out
    assert 'mcpServers.fs.env.APP_FS_ROOT: "/srv/a" -> "/srv/b"' in out
    for data in _all_stored_bytes(local_store):
        assert b"plantedOpenAI" not in data


def test_environment_settings_recorded_redacted_and_diffed(
    tmp_path: Path,
    local_store: Store,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    Path("store.toml").write_text('[record]\nenv = ["AGENT_TIMEOUT_SECONDS"]\n')
    monkeypatch.setenv("AGENT_TIMEOUT_SECONDS", "600")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("LITELLM_PROXY_URL", "http://proxy:4000")
    first = record_run(
        _trajectory(tmp_path / "a"), store=local_store, env=["OPENAI_API_KEY", "UNSET_VARIABLE"]
    )
    assert first.manifest.environment == {
        "AGENT_TIMEOUT_SECONDS": "600",
        "OPENAI_API_KEY": MARKER,
    }
    monkeypatch.setenv("AGENT_TIMEOUT_SECONDS", "900")
    trajectory = _trajectory(tmp_path / "b")
    args = ["--store", local_store.url, "record", "--trajectory", str(trajectory)]
    assert run([*args, "--env", "LITELLM_PROXY_URL", "--env", "OPENAI_API_KEY"]) == 0
    second = capsys.readouterr().out.split()[0]
    assert _manifest(local_store, second).environment["LITELLM_PROXY_URL"] == "http://proxy:4000"
    assert run(["--store", local_store.url, "diff", first.digest, second]) == 0
    out = capsys.readouterr().out
    assert 'AGENT_TIMEOUT_SECONDS: "600" -> "900"' in out
    assert 'LITELLM_PROXY_URL: (absent) -> "http://proxy:4000"' in out
    assert "OPENAI_API_KEY" not in out  # redacted the same on both sides
    for data in _all_stored_bytes(local_store):
        assert b"plantedOpenAI" not in data


def test_installed_packages_are_diffed_package_by_package(
    tmp_path: Path,
    local_store: Store,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from casstore.runs import packages

    real = packages.installed()
    assert real["msgspec"] and real["blake3"]  # the real interpreter's, by name
    monkeypatch.setattr(packages, "installed", lambda: {"litellm": "1.84.0", "numpy": "2.1.0"})
    a = record_run(_trajectory(tmp_path / "a"), store=local_store).digest
    monkeypatch.setattr(
        packages, "installed", lambda: {"litellm": "1.84.0", "numpy": "2.1.3", "rich": "14.0"}
    )
    b = record_run(_trajectory(tmp_path / "b"), store=local_store).digest
    assert run(["--store", local_store.url, "diff", a, b]) == 0
    out = capsys.readouterr().out
    assert 'numpy: "2.1.0" -> "2.1.3"' in out and 'rich: (absent) -> "14.0"' in out
    assert "litellm" not in out


def test_code_provenance_comes_from_the_runners_checkout(
    tmp_path: Path, local_store: Store
) -> None:
    """A runner started from outside its checkout still records its commit."""
    repo = tmp_path / "repo"
    (repo / "agent").mkdir(parents=True)
    (repo / "agent" / "__init__.py").write_text("")
    (repo / "agent" / "main.py").write_text(
        textwrap.dedent(
            """
            from runner_hooks import RunRecorder

            def record(store, trajectory):
                with RunRecorder(store=store, argv=["python", "-m", "agent.main"]) as rec:
                    return rec.finish(trajectory)
            """
        )
    )

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=repo,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "agent")
    sys.path.insert(0, str(repo))
    try:
        from agent.main import record  # type: ignore[import-not-found]

        digest = record(local_store, _trajectory(tmp_path / "elsewhere"))
    finally:
        sys.path.remove(str(repo))
        sys.modules.pop("agent.main", None)
        sys.modules.pop("agent", None)
    assert not Path.cwd().is_relative_to(repo)
    manifest = _manifest(local_store, digest)
    assert manifest.code.git_sha == git("rev-parse", "HEAD")
    assert manifest.code.git_dirty is False


# -- replay of a runner held aside from casstore's examples -------------------------

HELD_ASIDE_RUNNER = '''
"""A runner casstore's authors did not write: started with python -m, a required URL
flag, a file-valued extra-args flag, a secret flag."""
import argparse, json, sys
from pathlib import Path
from urllib.parse import urlsplit
from runner_hooks import RunRecorder

def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--task", required=True)
    p.add_argument("--service-url", required=True)
    p.add_argument("--extra-args", required=True, help="a JSON file")
    p.add_argument("--api-key", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    task = json.loads(Path(a.task).read_text())
    extra = json.loads(Path(a.extra_args).read_text())
    data = Path(urlsplit(a.service_url).path, "data.txt").read_text()
    with RunRecorder(trajectory_id=task["id"], orchestrator_model="fake",
                     initial_messages=a.task, configs={"extra_args": a.extra_args}) as rec:
        steps = [data.upper()] * extra["repeat"] + [m["content"] for m in task["messages"]]
        Path(a.out).write_text(json.dumps({"task": task, "steps": steps}, indent=1))
        rec.finish(a.out)
    return 0

sys.exit(main())
'''


def test_replay_runs_a_held_aside_module_runner_as_printed(
    tmp_path: Path, local_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    (home / "agentpkg").mkdir(parents=True)
    (home / "agentpkg" / "__init__.py").write_text("")
    (home / "agentpkg" / "run.py").write_text(HELD_ASIDE_RUNNER)
    service = tmp_path / "service"
    service.mkdir()
    (service / "data.txt").write_text("ledger")
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"messages": [{"role": "user", "content": "sum"}], "id": "h1"}))
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"repeat": 3}))
    env = {k: v for k, v in os.environ.items() if k != "CAS_STORE"}
    env.update(CAS_STORE=local_store.url, PYTHONPATH=str(ROOT))
    argv = [
        sys.executable, "-m", "agentpkg.run", "--task", str(task),
        "--service-url", f"file://{service}", "--extra-args", str(extra),
        "--api-key", SECRET, "--out", str(tmp_path / "out" / "trajectory.json"),
    ]  # fmt: skip
    (tmp_path / "out").mkdir()
    done = subprocess.run(argv, cwd=home, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    digest = local_store.resolve("runs/h1")

    into = tmp_path / "replay"
    assert run(["--store", local_store.url, "replay", digest, "--into", str(into)]) == 0
    printed = capsys.readouterr().out
    plan = json.loads((into / "replay.json").read_text())
    command = plan["command_line"]
    assert command in printed and SECRET not in printed
    assert command.startswith('cd "${CODE_ROOT}" && python -m agentpkg.run --task ')
    words = shlex.split(command.split(" && ", 1)[1])
    assert words[words.index("--extra-args") + 1] == str(into / "configs" / "extra_args.json")
    assert words[words.index("--task") + 1] == str(into / "initial_messages.json")
    assert words[words.index("--service-url") + 1] == "${SERVICE_URL}"
    assert words[words.index("--api-key") + 1] == "${API_KEY}"
    for name in ("$SERVICE_URL", "$API_KEY", "$CODE_ROOT"):
        assert name in printed

    # Another machine: its own service holding the same data, its own key.
    other = tmp_path / "other-service"
    other.mkdir()
    (other / "data.txt").write_text("ledger")
    env.update(CODE_ROOT=str(home), SERVICE_URL=f"file://{other}", API_KEY="sk-other")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    again = subprocess.run(
        ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    original = json.loads((tmp_path / "out" / "trajectory.json").read_text())
    replayed = json.loads((into / "output" / "trajectory.json").read_text())
    assert replayed == original


# -- determinism with providers that reject parameters -----------------------------


class UnsupportedParamsError(Exception):
    pass


def fake_litellm_completion(model: str, drop_params: bool = False, **params: Any) -> dict[str, Any]:
    """litellm 1.84's behaviour: Anthropic models take no seed, gpt-5 no temperature 0;
    ``drop_params=True`` drops what the model does not support instead of failing."""
    unsupported = {"seed"} if model.startswith("anthropic/") else set()
    if model == "openai/gpt-5" and params.get("temperature", 1) != 1:
        unsupported.add("temperature")
    rejected = unsupported & params.keys()
    if rejected and not drop_params:
        raise UnsupportedParamsError(f"{model} does not support {sorted(rejected)}")
    return {k: v for k, v in params.items() if k not in rejected}


@pytest.mark.parametrize("model", ["anthropic/claude-sonnet-4", "openai/gpt-5"])
def test_determinism_with_providers_that_reject_seed_or_temperature(
    model: str, tmp_path: Path, local_store: Store
) -> None:
    parser = argparse.ArgumentParser()
    add_reproducibility_args(parser)
    args = parser.parse_args(["--seed", "7", "--deterministic"])
    with pytest.raises(UnsupportedParamsError):
        fake_litellm_completion(model, **apply_determinism(args, {"max_tokens": 50}))
    extra = apply_determinism(args, {"max_tokens": 50}, drop_unsupported=True)
    sent = fake_litellm_completion(model, **extra)
    assert sent["max_tokens"] == 50 and sent != {k: extra[k] for k in sent} | extra
    with RunRecorder(store=local_store, orchestrator_extra_args=extra, seed=7) as recorder:
        digest = recorder.finish(_trajectory(tmp_path))
    # What was requested is recorded, drop_params included: a dropped seed is visible.
    recorded = _manifest(local_store, digest).orchestrator_extra_args
    assert recorded == {"max_tokens": 50, "seed": 7, "temperature": 0, "drop_params": True}
    assert apply_determinism(parser.parse_args([]), {}, drop_unsupported=True) == {}


# -- never silently lost -----------------------------------------------------------


def test_problems_are_logged_and_warned_at_the_callers_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recorder = RunRecorder(store=str(tmp_path / "down"), trajectory_id="w")
        recorder.attach_snapshot("initial", tmp_path / "missing.zip")
    assert {w.filename for w in caught} == {__file__}
    assert any(issubclass(w.category, StoreUnavailableWarning) for w in caught)
    assert any("initial snapshot not recorded" in str(w.message) for w in caught)
    logged = [r for r in caplog.records if r.name == "casstore"]
    assert any("store unavailable" in r.getMessage() for r in logged)
    assert any("initial snapshot not recorded" in r.getMessage() for r in logged)


def test_a_run_recorded_while_the_store_was_down_is_pushed_later(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = make_inputs(tmp_path / "task")
    url = str(tmp_path / "store")
    with pytest.warns(StoreUnavailableWarning, match="cas push --spool"):
        recorded = record_run(
            _trajectory(tmp_path / "out"),
            store=url,
            snapshots={"initial": task / "env.zip"},
            mcp_config=task / "mcp.json",
            params={"trajectory_id": "offline-1"},
        )
    assert recorded.spooled
    note = tmp_path / "out" / "trajectory.manifest.json.spooled"
    assert "cas push --spool" in note.read_text()
    init_store(url)
    assert run(["push", "--spool"]) == 0
    assert "runs/offline-1 -> " in capsys.readouterr().out
    store = open_store(url)
    assert store.resolve("runs/offline-1") == recorded.digest
    assert run(["--store", url, "verify", recorded.digest]) == 0
    assert not note.exists()
    capsys.readouterr()
    assert run(["push", "--spool"]) == 0
    assert "nothing spooled" in capsys.readouterr().out


def test_a_store_failing_part_way_leaves_a_run_split_and_push_completes_it(
    tmp_path: Path, local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Snapshots reached the store before it failed; the rest went to the spool."""
    task = make_inputs(tmp_path / "task")
    down = [True]
    put_file = local_store.put_file

    def failing(*args: Any, **kwargs: Any) -> Any:
        if down[0]:
            raise BackendError("connection reset by peer")
        return put_file(*args, **kwargs)

    monkeypatch.setattr(local_store, "put_file", failing)
    with pytest.warns(StoreUnavailableWarning):
        recorded = record_run(
            _trajectory(tmp_path / "out"),
            store=local_store,
            snapshots={"initial": task / "env.zip"},
            params={"trajectory_id": "split-1"},
        )
    assert recorded.spooled
    initial = recorded.manifest.initial_snapshot
    assert initial is not None and local_store.has(initial.digest)
    assert not local_store.has(recorded.digest)
    down[0] = False
    assert run(["push", "--spool"]) == 0
    assert run(["--store", local_store.url, "verify", recorded.digest]) == 0
    assert local_store.resolve("runs/split-1") == recorded.digest


def test_strict_recording_raises_instead(tmp_path: Path) -> None:
    with pytest.raises(casstore.NotAStore):
        record_run(_trajectory(tmp_path), store=str(tmp_path / "down"), strict=True)
    with pytest.raises(FileNotFoundError):
        record_run(tmp_path / "missing.json", store=str(tmp_path / "down"), strict=True)
