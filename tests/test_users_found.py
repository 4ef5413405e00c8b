"""What a user's-eye pass over the README found, each now a test: names refused rather
than renamed, the command line among the inputs a suite diff names, environment
settings in the replayed command, a mistyped file refused, sidecars everywhere,
digests printed in full, read-only before any work, `cas info` before `cas init`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from casstore.cli.main import run
from casstore.format.digest import hash_bytes
from casstore.store.objects import Store
from runner_hooks import record_grading, record_suite


def _record(store: Store, folder: Path, *extra: str, argv: tuple[str, ...] = ()) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    trajectory = folder / "trajectory.json"
    trajectory.write_text(json.dumps({"messages": ["done"]}))
    args = ["--store", store.url, "record", "--trajectory", str(trajectory), *extra]
    assert run([*args, "--", *argv] if argv else args) == 0
    return str(folder / "trajectory.manifest.json")


def _grade(store: Store, sidecar: str, score: float) -> str:
    grades = Path(sidecar).with_name("grades.json")
    grades.write_text(json.dumps({"v": score}))
    return record_grading(sidecar, grades=grades, score=score, store=store)


def test_bad_names_are_refused_not_renamed(
    local_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sidecar = _record(local_store, tmp_path / "a", "--trajectory-id", "t1")
    grading = _grade(local_store, sidecar, 1.0)
    refs = local_store.refs()
    for bad in ("bad name", "../x", "deadbeef99", "suites/foo"):
        assert run(["--store", local_store.url, "suite", "create", "--name", bad, grading]) == 2
        assert run(["--store", local_store.url, "record", "--trajectory", sidecar,
                    "--ref", bad]) == 2  # fmt: skip
        assert "invalid" in capsys.readouterr().err
    assert local_store.refs() == refs  # nothing recorded under another name
    assert run(["--store", local_store.url, "suite", "create", "--name", "law", grading]) == 0
    assert capsys.readouterr().out.split()[:2] == [local_store.resolve("suites/law"), "suites/law"]


def test_a_suite_diff_names_the_command_line_when_only_it_differs(
    local_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gradings = []
    for side, steps in (("a", "10"), ("b", "99")):
        sidecar = _record(
            local_store,
            tmp_path / side,
            "--trajectory-id",
            "t1",
            argv=("python", "-m", "runner.main", "--max-steps", steps),
        )
        grading = _grade(local_store, sidecar, 0.2 if side == "a" else 0.8)
        gradings.append(record_suite(f"s-{side}", [(grading, {"task": "x"})], store=local_store))
    capsys.readouterr()
    assert run(["--store", local_store.url, "diff", *gradings]) == 0
    assert "differs: invocation" in capsys.readouterr().out


def test_replay_sets_the_recorded_environment(
    local_store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AGENT_TIMEOUT_SECONDS", "30")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-plantedReplayKey0123456789abcdef")
    sidecar = _record(
        local_store,
        tmp_path / "run",
        "--env",
        "AGENT_TIMEOUT_SECONDS",
        "--env",
        "OPENAI_API_KEY",
        argv=("python", "-m", "runner.main"),
    )
    capsys.readouterr()
    assert run(["--store", local_store.url, "replay", sidecar, "--into", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert (
        'AGENT_TIMEOUT_SECONDS=30 OPENAI_API_KEY="${OPENAI_API_KEY}" python -m runner.main' in out
    )
    assert "$OPENAI_API_KEY (environment, redacted when recorded)" in out
    assert "plantedReplayKey" not in out


def test_a_mistyped_file_is_refused_and_records_nothing(
    local_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "t.json").write_text("{}")
    for args in (
        ["--trajectory", str(tmp_path / "nosuch.json")],
        ["--trajectory", str(tmp_path / "t.json"), "--snapshot", f"final={tmp_path}/nosuch"],
    ):
        assert run(["--store", local_store.url, "record", *args]) == 1
        assert "No such file" in capsys.readouterr().err
    assert local_store.refs() == {} and list(local_store.iter_digests()) == []
    assert not (tmp_path / "nosuch.manifest.json").exists()


def test_an_environment_first_recorded_shows_as_its_settings(
    local_store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = _record(local_store, tmp_path / "a")
    monkeypatch.setenv("AGENT_TIMEOUT_SECONDS", "30")
    second = _record(local_store, tmp_path / "b", "--env", "AGENT_TIMEOUT_SECONDS")
    capsys.readouterr()
    assert run(["--store", local_store.url, "diff", first, second]) == 0
    out = capsys.readouterr().out
    assert 'AGENT_TIMEOUT_SECONDS: (absent) -> "30"' in out
    assert "{}" not in out  # no line for the empty mapping the settings replaced


def test_sidecars_digests_and_read_only(
    local_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sidecar = _record(local_store, tmp_path / "a")
    bundle = tmp_path / "run.casb"
    assert run(["--store", local_store.url, "bundle", sidecar, "-o", str(bundle)]) == 0
    capsys.readouterr()
    absent = hash_bytes(b"never stored")
    assert run(["--store", local_store.url, "has", absent.removeprefix("blake3:")]) == 3
    assert capsys.readouterr().out == f"{absent}\n"  # in full, as digests print
    present = tmp_path / "present.txt"
    present.write_bytes(b"already stored")
    local_store.put_bytes(b"already stored")
    assert run(["--store", local_store.url, "--read-only", "put", str(present)]) == 1
    assert "read-only" in capsys.readouterr().err


def test_info_says_which_store_before_it_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "store.toml").write_text('[store]\nurl = "team-store"\n')
    monkeypatch.chdir(tmp_path)
    assert run(["info"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "team-store") in out and "cas init creates it" in out
    assert run(["info", "--url"]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'team-store'}\n"


def test_a_folder_snapshot_leaves_out_a_store_inside_it(tmp_path: Path) -> None:
    from casstore.store.open import init_store
    from casstore.trees.ingest import tree_digest

    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print(1)\n")
    before = tree_digest(project).digest
    store, _ = init_store(str(project / ".cas"))  # the embedded store, beside the code
    store.put_tree(project)
    assert tree_digest(project).digest == before
    assert store.put_tree(project).digest == before
