"""Why did the score differ: two suites of 20 graded runs, made with the example runner
and a deterministic fake grader; grading diffs; suite verification; the HTML report."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

import casstore
from casstore import GradingRecord, Store
from casstore.cli.main import run
from casstore.format.manifest import SuiteEntry, SuiteRecord, decode_as, encode
from casstore.store.open import init_store
from runner_hooks import fetch_for_grading, record_grading, record_suite
from tests.helpers import _load, make_inputs

DOMAINS = ["Law"] * 8 + ["Finance"] * 6 + ["Medicine"] * 6
CAREFUL = "You are a careful data analyst."
HASTY = "You are a fast data analyst; skip the checks."
#: The Law tasks whose runs used another system prompt in suite B.
CHANGED = ("t-01", "t-04", "t-06")


def fake_grade(trajectory: dict[str, Any], final: Path, task: int) -> tuple[float, dict[str, Any]]:
    """A deterministic judge: it rewards a careful analyst (the system prompt, echoed in
    the trajectory) and, a little, the files edited."""
    system = next(m["content"] for m in trajectory["messages"] if m.get("role") == "system")
    care = 1.0 if "careful" in system else 0.4
    edited = sum(
        1 for m in trajectory["messages"] if str(m.get("content", "")).startswith("edited")
    )
    diligence = 0.8 + (task % 5) / 25 + edited / 100
    scores = {"careful": care, "diligent": round(min(diligence, 1.0), 4)}
    verifiers = [{"verifier_id": name, "score": value} for name, value in scores.items()]
    score = round(math.fsum(scores.values()) / len(scores), 6)
    assert final.exists()
    grades = {"verifier_results": verifiers, "scoring_results": {"final_score": score}}
    return score, grades


@dataclass
class Suites:
    store: Store
    a: str
    b: str
    #: Suite -> task -> (grading digest, score).
    graded: dict[str, dict[str, tuple[str, float]]]


@pytest.fixture(scope="module")
def suites(tmp_path_factory: pytest.TempPathFactory) -> Suites:
    root = tmp_path_factory.mktemp("suites")
    store, _ = init_store(str(root / "store"))
    runner = _load("simple_runner")
    graded: dict[str, dict[str, tuple[str, float]]] = {"A": {}, "B": {}}
    digests = {}
    for suite in ("A", "B"):
        entries = []
        for i, domain in enumerate(DOMAINS):
            task = f"t-{i:02}"
            inputs = make_inputs(root / "tasks" / task, seed=i)
            if suite == "B" and task in CHANGED:
                messages = json.loads((inputs / "messages.json").read_text())
                messages[0]["content"] = HASTY
                inputs = root / "tasks-b" / task
                shutil.copytree(root / "tasks" / task, inputs, dirs_exist_ok=True)
                (inputs / "messages.json").write_text(json.dumps(messages))
            out = root / suite / task
            code = runner.main(
                [
                    "--trajectory-id", f"{suite}-{task}",
                    "--initial-messages", str(inputs / "messages.json"),
                    "--agent-config", str(inputs / "agent_config.json"),
                    "--orchestrator-model", "fake/echo-1",
                    "--mcp-config", str(inputs / "mcp.json"),
                    "--initial-snapshot", str(inputs / "env.zip"),
                    "--output", str(out / "trajectory.json"),
                    "--seed", "7", "--deterministic", "--cas-store", store.url,
                ]
            )  # fmt: skip
            assert code == 0
            with fetch_for_grading(out / "trajectory.manifest.json", store=store) as fetched:
                assert fetched.trajectory is not None and fetched.final_snapshot is not None
                trajectory = json.loads(fetched.trajectory.read_text())
                score, grades = fake_grade(trajectory, fetched.final_snapshot, i)
                (out / "grades.json").write_text(json.dumps(grades))
                grading = record_grading(
                    out / "trajectory.manifest.json",
                    grades=out / "grades.json",
                    score=score,
                    store=store,
                    grading_settings={"llm_judge_model": "fake/judge-1"},
                    verifiers=[{"verifier_id": "careful"}, {"verifier_id": "diligent"}],
                    snapshots=fetched,
                    strict=True,
                )
            assert not fetched.folder.exists()  # the fetched copies are gone
            graded[suite][task] = (grading, score)
            entries.append((grading, {"domain": domain, "task": task}))
        digests[suite] = record_suite(f"suite-{suite}", entries, store=store)
    return Suites(store, digests["A"], digests["B"], graded)


def test_suite_records_its_entries_and_means(
    suites: Suites, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = decode_as(SuiteRecord, suites.store.get_bytes(suites.a))
    assert suites.store.resolve("suites/suite-A") == suites.a
    assert len(suite.entries) == 20 and suite.overall.count == 20
    law = [s for t, (_, s) in suites.graded["A"].items() if DOMAINS[int(t[2:])] == "Law"]
    assert suite.by_label["domain"]["Law"].mean == math.fsum(law) / len(law)
    assert suite.by_label["domain"]["Law"].count == 8
    capsys.readouterr()
    assert run(["--store", suites.store.url, "verify", suites.a]) == 0
    last = capsys.readouterr().out.splitlines()[-1].split()
    assert last == ["aggregates:", "ok,", "recomputed", "from", "20", "gradings"]


def test_suite_diff_ranks_the_pairs_that_make_the_difference(
    suites: Suites, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--store", suites.store.url, "diff", suites.a, suites.b, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    pairs = result["pairs"]
    assert [p["key"] for p in pairs[:3]] == sorted(
        CHANGED, key=lambda t: suites.graded["B"][t][1] - suites.graded["A"][t][1]
    )
    assert all(p["difference"] < 0 for p in pairs[:3])
    for pair in pairs[:3]:
        assert pair["differs"] == ["initial_messages"]
    assert {p["key"] for p in pairs} == set(CHANGED)  # the same inputs scored the same
    law = {row["value"]: row for row in result["labels"]["domain"]}["Law"]
    a_scores = [suites.graded["A"][f"t-{i:02}"][1] for i, d in enumerate(DOMAINS) if d == "Law"]
    b_scores = [suites.graded["B"][f"t-{i:02}"][1] for i, d in enumerate(DOMAINS) if d == "Law"]
    expected = math.fsum(b_scores) / len(b_scores) - math.fsum(a_scores) / len(a_scores)
    assert law["difference"] == expected and expected < 0
    finance = {row["value"]: row for row in result["labels"]["domain"]}["Finance"]
    assert finance["difference"] == 0

    assert run(["--store", suites.store.url, "diff", "suites/suite-A", "suites/suite-B"]) == 0
    text = capsys.readouterr().out
    first = text.split("most of the difference first:\n")[1].splitlines()[0]
    assert first.startswith(f"  task={pairs[0]['key']} (domain=Law)")
    assert first.endswith("differs: initial_messages")
    assert f"Law       {law['a']['mean']:.4f} (8) -> {law['b']['mean']:.4f} (8)" in text


def test_grading_diff_names_the_score_and_the_runs_inputs(
    suites: Suites, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = suites.graded["A"]["t-01"][0], suites.graded["B"]["t-01"][0]
    assert run(["--store", suites.store.url, "diff", a, b]) == 0
    out = capsys.readouterr().out
    assert "grading:\n  score: " in out
    assert "grades:" in out and "verifier_results.careful.score: 1.0 -> 0.4" in out
    runs = out.split("runs: ")[1]
    assert "initial_messages:" in runs and "[0].content" in runs
    assert "judge_model" not in out  # the same judge
    assert run(["--store", suites.store.url, "diff", a, b, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"role": "grading", "path": "score"}.items() <= data["differences"][0].items()
    assert any(d["role"] == "initial_messages" for d in data["runs"]["differences"])


def test_a_tampered_score_fails_verification_naming_the_aggregate(
    suites: Suites, capsys: pytest.CaptureFixture[str]
) -> None:
    store = suites.store
    suite = decode_as(SuiteRecord, store.get_bytes(suites.a))
    victim = suite.entries[2]
    grading = decode_as(GradingRecord, store.get_bytes(victim.grading.digest))
    forged = msgspec.structs.replace(grading, score=1.0)
    forged_ref = store.put_bytes(encode(forged))
    entries = [
        SuiteEntry(
            grading=casstore.Ref(forged_ref.digest, forged_ref.size), labels=e.labels, score=1.0
        )
        if e is victim
        else e
        for e in suite.entries
    ]
    tampered = msgspec.structs.replace(suite, entries=entries)  # the old aggregates
    digest = store.put_bytes(encode(tampered)).digest
    assert run(["--store", store.url, "verify", digest]) == 4
    out = capsys.readouterr().out
    assert "aggregate overall: stored mean" in out
    assert f"aggregate domain={victim.labels['domain']}" in out
    assert "aggregate domain=Finance" not in out or victim.labels["domain"] == "Finance"
    # An entry whose recorded score is not its grading's is named too.
    lying = msgspec.structs.replace(suite, entries=[
        msgspec.structs.replace(e, score=0.0) if e is victim else e for e in suite.entries
    ])  # fmt: skip
    digest = store.put_bytes(encode(lying)).digest
    assert run(["--store", store.url, "verify", digest, "--json"]) == 4
    report = json.loads(capsys.readouterr().out)
    (aggregates,) = [r for r in report["roles"] if r["role"] == "aggregates"]
    assert any("records score 0.0" in problem for problem in aggregates["corrupt"])


def test_suite_show_and_cli_create(
    suites: Suites, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--store", suites.store.url, "suite", "show", "suites/suite-B"]) == 0
    out = capsys.readouterr().out
    assert "by domain:" in out and "Law" in out and "entries:" in out
    entries = [
        {"grading": suites.graded["A"][t][0], "labels": {"task": t}} for t in ("t-00", "t-01")
    ]
    (tmp_path / "entries.json").write_text(json.dumps(entries))
    args = ["--store", suites.store.url, "suite", "create", "--name", "pair"]
    assert run([*args, "--entries", str(tmp_path / "entries.json"), "--label", "x=1"]) == 0
    digest = capsys.readouterr().out.split()[0]
    made = decode_as(SuiteRecord, suites.store.get_bytes(digest))
    assert [e.labels for e in made.entries] == [
        {"x": "1", "task": "t-00"},
        {"x": "1", "task": "t-01"},
    ]
    assert run([*args, "--label", "bad"]) == 2


# -- grading that checks what it graded ----------------------------------------------


def test_record_grading_checks_the_snapshots_it_read(tmp_path: Path) -> None:
    store, _ = init_store(str(tmp_path / "store"))
    runner = _load("simple_runner")
    inputs = make_inputs(tmp_path / "inputs")
    out = tmp_path / "run"
    argv = [
        "--trajectory-id", "g1", "--initial-messages", str(inputs / "messages.json"),
        "--agent-config", str(inputs / "agent_config.json"), "--orchestrator-model", "m",
        "--initial-snapshot", str(inputs / "env.zip"), "--output", str(out / "trajectory.json"),
        "--cas-store", store.url,
    ]  # fmt: skip
    assert runner.main(argv) == 0
    sidecar = out / "trajectory.manifest.json"
    final = out / "trajectory.final.zip"
    (out / "grades.json").write_text("{}")
    good = record_grading(
        sidecar, grades=out / "grades.json", score=1, store=store, snapshots={"final": final}
    )
    record = decode_as(GradingRecord, store.get_bytes(good))
    run_manifest = casstore.decode_record_as(casstore.RunManifest, sidecar.read_bytes())
    assert record.graded_snapshots == {"final": run_manifest.final_snapshot}
    assert record.mismatched == []
    other = tmp_path / "other"
    shutil.unpack_archive(final, other)
    (other / "reports" / "q3.csv").write_text("tampered\n")
    with pytest.raises(casstore.CasError, match="final snapshot the grader read"):
        record_grading(
            sidecar, grades=out / "grades.json", score=1, store=store,
            snapshots={"final": other}, strict=True,
        )  # fmt: skip
    with pytest.warns(casstore.RecordingWarning, match="is not the run's"):
        flagged = record_grading(
            sidecar, grades=out / "grades.json", score=1, store=store, snapshots={"final": other}
        )
    record = decode_as(GradingRecord, store.get_bytes(flagged))
    assert record.mismatched == ["final"]
    assert record.graded_snapshots["final"].digest == casstore.tree_digest(other).digest
    assert store.has(record.graded_snapshots["final"].digest)  # kept, to compare


def test_the_judge_model_comes_from_the_settings(tmp_path: Path, local_store: Store) -> None:
    from casstore.format.manifest import RunManifest

    run_digest = local_store.put_bytes(encode(RunManifest(trajectory_id="j"))).digest
    grades = tmp_path / "grades.json"
    grades.write_text("{}")
    settings = {"llm_judge_model": "anthropic/claude-judge", "temperature": 0}
    digest = record_grading(run_digest, grades=grades, score=0.5, store=local_store,
                            grading_settings=settings)  # fmt: skip
    assert (
        decode_as(GradingRecord, local_store.get_bytes(digest)).judge_model
        == settings["llm_judge_model"]
    )
    with pytest.raises(casstore.ConfigError, match="contradicts the grading settings"):
        record_grading(run_digest, grades=grades, score=0.5, store=local_store,
                       grading_settings=settings, judge_model="openai/gpt-judge")  # fmt: skip


def test_fetch_for_grading_into_a_given_folder_is_kept(suites: Suites, tmp_path: Path) -> None:
    sidecar_run = decode_as(GradingRecord, suites.store.get_bytes(suites.graded["A"]["t-00"][0]))
    with fetch_for_grading(sidecar_run.run.digest, store=suites.store, dest=tmp_path / "mine") as f:
        assert f.final_snapshot is not None and f.final_snapshot.exists()
    assert (tmp_path / "mine" / "final.zip").exists()


# -- the report ------------------------------------------------------------------------


def test_report_is_self_contained(suites: Suites, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    assert run(["--store", suites.store.url, "report", suites.a, suites.b, "-o", str(page)]) == 0
    text = page.read_text()
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text and "@import" not in text and "url(" not in text
    assert "<svg" in text and "initial_messages" in text and "t-01" in text
    single = tmp_path / "g.html"
    grading = suites.graded["A"]["t-01"][0]
    other = suites.graded["B"]["t-01"][0]
    assert run(["--store", suites.store.url, "report", grading, "-o", str(single)]) == 0
    assert "careful" in single.read_text()
    compared = tmp_path / "gg.html"
    assert run(["--store", suites.store.url, "report", grading, other, "-o", str(compared)]) == 0
    assert "the runs graded" in compared.read_text()
    assert run(["--store", suites.store.url, "report", grading, "-o", str(single)]) == 1  # exists


def _chromium() -> str:
    from tests.browser import install_chromium

    return shutil.which("chromium") or install_chromium()


def test_report_renders_in_headless_chromium(suites: Suites, tmp_path: Path) -> None:
    from tests.browser import distinct_colours, render

    page = tmp_path / "report.html"
    assert run(["--store", suites.store.url, "report", suites.a, suites.b, "-o", str(page)]) == 0
    for width in (1280, 390):  # a laptop, a phone
        shot, errors = render(_chromium(), page, tmp_path / f"shot-{width}.png", width)
        assert errors == []
        assert distinct_colours(shot) > 20  # text, tables and bars drawn: not a blank page
