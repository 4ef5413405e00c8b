"""A grader with the command line of archipelago's ``grading/runner/main.py`` and a
deterministic fake judge: no LLM, no network. It scores a run's final snapshot and
trajectory against verifiers, writes ``grades.json`` in archipelago's shape, and
records what it scored with casstore; the lines that integrate casstore end in
``# casstore``.

    cd examples/grading && python -m grader.main --grading-run-id g1 --trajectory-id t1 \\
        --initial-snapshot initial.zip --final-snapshot final.tar.gz \\
        --trajectory trajectory.json --grading-settings settings.json \\
        --verifiers verifiers.json --scoring-config scoring.json --output grades.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from runner_hooks import record_grading, sidecar_path  # casstore


def read_snapshot(path: Path) -> dict[str, bytes]:
    """Every regular file of a snapshot (folder, zip, tar[.gz]) by its path."""
    if path.is_dir():
        return {
            p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()
        }
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}
    with tarfile.open(path) as t:
        out = {}
        for member in t.getmembers():
            f = t.extractfile(member) if member.isfile() else None
            if f is not None:
                out[member.name.removeprefix("./")] = f.read()
        return out


def judge(model: str, verifier: dict[str, Any], evidence: str) -> float:
    """A fake LLM judge: a score in [0, 1] that depends only on its inputs."""
    digest = hashlib.sha256(f"{model}\0{json.dumps(verifier, sort_keys=True)}\0{evidence}".encode())
    return round(int.from_bytes(digest.digest()[:4], "big") / 0xFFFFFFFF, 3)


def grade(
    verifier: dict[str, Any],
    initial: dict[str, bytes],
    final: dict[str, bytes],
    trajectory: dict[str, Any],
    model: str,
) -> float:
    kind = verifier.get("kind", "judge")
    if kind == "file_changed":
        path = verifier["path"]
        return float(initial.get(path) != final.get(path))
    if kind == "finished":
        return float(trajectory.get("status") == "completed")
    messages = trajectory.get("messages", [])
    return judge(model, verifier, json.dumps(messages, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grading-run-id", required=True)
    parser.add_argument("--trajectory-id", required=True)
    parser.add_argument("--initial-snapshot", required=True, type=Path)
    parser.add_argument("--final-snapshot", required=True, type=Path)
    parser.add_argument("--trajectory", required=True, type=Path)
    parser.add_argument("--grading-settings", required=True, type=Path)
    parser.add_argument("--verifiers", required=True, type=Path)
    parser.add_argument("--eval-configs", type=Path)
    parser.add_argument("--scoring-config", type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument(
        "--run-manifest", help="the run's manifest (default: its sidecar)"
    )  # casstore
    args = parser.parse_args(argv)

    settings = json.loads(args.grading_settings.read_text())
    verifiers = json.loads(args.verifiers.read_text())
    scoring = json.loads(args.scoring_config.read_text()) if args.scoring_config else {}
    initial, final = read_snapshot(args.initial_snapshot), read_snapshot(args.final_snapshot)
    trajectory = json.loads(args.trajectory.read_text())
    model = settings.get("llm_judge_model", "fake/judge-1")
    results = [
        {
            "verifier_id": v["verifier_id"],
            "score": grade(v, initial, final, trajectory, model),
            "weight": v.get("weight", 1.0),
        }
        for v in verifiers
    ]
    total = sum(r["weight"] for r in results) or 1.0
    score = round(sum(r["score"] * r["weight"] for r in results) / total, 6)
    grades = {
        "grading_run_id": args.grading_run_id,
        "trajectory_id": args.trajectory_id,
        "grading_run_status": "completed",
        "verifier_results": results,
        "scoring_results": {"final_score": score, "method": scoring.get("method", "mean")},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(grades, indent=2))
    record_grading(  # casstore
        args.run_manifest or sidecar_path(args.trajectory),  # casstore
        grades=args.output,  # casstore
        score=score,  # casstore
        snapshots={"initial": args.initial_snapshot, "final": args.final_snapshot},  # casstore
        grading_settings=args.grading_settings,  # casstore
        verifiers=args.verifiers,  # casstore
        eval_configs=args.eval_configs,  # casstore
        scoring_config=args.scoring_config,  # casstore
    )  # casstore
    print(f"{args.grading_run_id}: score {score}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
