"""Record what a grader scored: the run, the grader's inputs, the grades and the score."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import casstore
from casstore import GradingRecord, Ref, RunManifest, Sink, Store

Source = str | os.PathLike[str]

GRADING_SUFFIX = ".grading.json"


def record_grading(
    manifest: str | os.PathLike[str],
    *,
    grades: Source,
    score: float | None,
    store: str | Store | None = None,
    judge_model: str = "",
    grading_settings: Any = None,
    verifiers: Any = None,
    eval_configs: Any = None,
    scoring_config: Any = None,
    baseline: str = "initial",
    artifacts: Mapping[str, Source] | None = None,
    strict: bool = False,
    code_root: Source = ".",
) -> str:
    """Store a grading record for a run and return its digest.

    ``manifest`` is the run's manifest digest, or its sidecar file. Settings,
    verifiers, eval and scoring configs may be JSON values, JSON strings or
    JSON files; secrets in them are redacted. ``baseline`` names the snapshot
    role the grader compared against (looked up in the manifest). The record
    is also written beside ``grades`` as ``<grades stem>.grading.json``.
    """
    sink = Sink(store, strict=strict)
    run, run_manifest = _run_ref(sink, manifest)
    baseline_ref = run_manifest.snapshot(baseline)
    code, lock = casstore.code_provenance(code_root)
    if lock is not None:
        import msgspec

        code = msgspec.structs.replace(code, lock_file=sink.put_file("lock file", lock))

    redactor = casstore.Redactor()
    loaded = {}
    for what, value in (
        ("grading settings", grading_settings),
        ("verifiers", verifiers),
        ("eval configs", eval_configs),
        ("scoring config", scoring_config),
    ):
        if value is not None:
            try:
                loaded[what] = casstore.load_json(value)
            except (OSError, ValueError) as exc:
                sink.skip(what, exc)
    redacted = redactor.redact_all(loaded)

    def json_input(what: str, value: Any) -> Ref | None:
        if what not in redacted:
            return None
        return sink.put_bytes(what, casstore.canonical_json(redacted[what]))

    record = GradingRecord(
        created_at=casstore.utc_timestamp(),
        code=code,
        run=run,
        judge_model=judge_model,
        grading_settings=json_input("grading settings", grading_settings),
        verifiers=json_input("verifiers", verifiers),
        eval_configs=json_input("eval configs", eval_configs),
        scoring_config=json_input("scoring config", scoring_config),
        baseline_role=baseline,
        baseline_snapshot=baseline_ref,
        grades=sink.put_file("grades", grades),
        score=score,
        artifacts={
            name: ref
            for name, path in (artifacts or {}).items()
            if (ref := sink.put_file(f"artifact {name}", path)) is not None
        },
    )
    data = casstore.encode_record(record)
    ref = sink.put_bytes("grading record", data)
    if ref is not None:
        sink.claim_ref("gradings", run_manifest.trajectory_id or "grading", ref.digest)
    grades_path = Path(grades)
    try:
        with casstore.atomic_write(grades_path.with_name(grades_path.stem + GRADING_SUFFIX)) as f:
            f.write(data)
    except OSError as exc:
        sink.skip("grading sidecar", exc)
    return ref.digest if ref is not None else casstore.hash_bytes(data)


@dataclass(frozen=True)
class GradingInputs:
    """What a run produced, verified and written locally for a grader."""

    digest: str
    manifest: RunManifest
    folder: Path
    #: The snapshots as zip files (``zipfile`` opens them); None when not recorded.
    initial_snapshot: Path | None
    final_snapshot: Path | None
    trajectory: Path | None


def fetch_for_grading(
    manifest: str | os.PathLike[str],
    *,
    store: str | Store | None = None,
    dest: Source | None = None,
) -> GradingInputs:
    """Fetch a run's initial and final snapshots (as zips) and trajectory, verified.

    ``manifest`` is the run's digest (or tag) or its sidecar. Every byte written
    under ``dest`` (a new temporary folder by default) was re-hashed against the
    manifest's digests first; an object that is missing or corrupt raises, and
    nothing unverified is left behind. Records nothing.
    """
    opened = store if isinstance(store, Store) else casstore.open_store(store)
    spec = os.fspath(manifest)
    digest, data = casstore.read_record_bytes(spec, opened)
    run = casstore.decode_record_as(RunManifest, data, spec)
    folder = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix="cas-grading-"))
    folder.mkdir(parents=True, exist_ok=True)

    def snapshot(role: str) -> Path | None:
        ref = run.snapshot(role)
        if ref is None:
            return None
        target = folder / f"{role}.zip"
        opened.get_tree(ref.digest, target, format="zip", force=True)
        return target

    trajectory = None
    if run.trajectory is not None:
        trajectory = folder / "trajectory.json"
        opened.get_file(run.trajectory.digest, trajectory)
    return GradingInputs(digest, run, folder, snapshot("initial"), snapshot("final"), trajectory)


def _run_ref(sink: Sink, manifest: str | os.PathLike[str]) -> tuple[Ref, RunManifest]:
    """The graded run's reference and manifest, from a sidecar file or from the store."""
    spec = os.fspath(manifest)
    digest, data = casstore.read_record_bytes(spec, sink.store)
    return Ref(digest, len(data)), casstore.decode_record_as(RunManifest, data, spec)
