"""Record what a grader scored: the run, the grader's inputs, the grades and the score."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import casstore
from casstore import GradingRecord, Ref, RunManifest, Sink, Store

Source = str | os.PathLike[str]

GRADING_SUFFIX = ".grading.json"


#: Keys of grading settings that name the judge model (archipelago's first).
JUDGE_KEYS = ("llm_judge_model", "judge_model")


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
    snapshots: Mapping[str, Source] | GradingInputs | None = None,
    artifacts: Mapping[str, Source] | None = None,
    strict: bool = False,
    code_root: Source = ".",
) -> str:
    """Store a grading record for a run and return its digest.

    ``manifest`` is the run's manifest digest, or its sidecar file. Settings,
    verifiers, eval and scoring configs may be JSON values, JSON strings or
    JSON files; secrets in them are redacted. ``baseline`` names the snapshot
    role the grader compared against (looked up in the manifest).

    ``snapshots`` are what the grader read, by role (``{"final": "final.zip"}``), or
    the :class:`GradingInputs` that :func:`fetch_for_grading` wrote: their tree
    digests are recorded, and one that is not the run's snapshot is refused
    (``strict``) or recorded as mismatched with a warning. The judge model is read
    from the grading settings (``llm_judge_model``) when they name one; a
    ``judge_model`` that says otherwise is an error. The record is also written
    beside ``grades`` as ``<grades stem>.grading.json``.
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
    judge_model = _judge(loaded.get("grading settings"), judge_model)
    redacted = redactor.redact_all(loaded)

    def json_input(what: str, value: Any) -> Ref | None:
        if what not in redacted:
            return None
        return sink.put_bytes(what, casstore.canonical_json(redacted[what]))

    graded, mismatched = _graded(sink, run_manifest, snapshots)
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
        graded_snapshots=graded,
        mismatched=mismatched,
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


def _judge(settings: Any, given: str) -> str:
    """The judge model the settings name, else the one given; both, disagreeing: an error."""
    named = next(
        (str(settings[k]) for k in JUDGE_KEYS if isinstance(settings, dict) and settings.get(k)),
        "",
    )
    if named and given and named != given:
        raise casstore.ConfigError(
            f"judge_model={given!r} contradicts the grading settings, which name {named!r}"
        )
    return named or given


def _graded(
    sink: Sink, run: RunManifest, snapshots: Mapping[str, Source] | GradingInputs | None
) -> tuple[dict[str, Ref], list[str]]:
    """The tree of each snapshot the grader read, and the roles where it is not the run's."""
    if isinstance(snapshots, GradingInputs):
        # Fetched from the store and verified: the run's own, by construction.
        read = {"initial": snapshots.initial_snapshot, "final": snapshots.final_snapshot}
        return {r: ref for r in read if read[r] and (ref := run.snapshot(r))}, []
    graded: dict[str, Ref] = {}
    mismatched: list[str] = []
    for role, path in (snapshots or {}).items():
        recorded = run.snapshot(role)
        try:
            info = casstore.tree_digest(path)
        except (casstore.CasError, OSError) as exc:
            sink.skip(f"graded {role} snapshot", exc)
            continue
        if recorded is not None and info.digest == recorded.digest:
            graded[role] = recorded
            continue
        what = "has no such snapshot" if recorded is None else f"holds {recorded.digest}"
        sink.problem(
            f"casstore: the {role} snapshot the grader read ({path}, {info.digest}) is not "
            f"the run's (the run {what}); the grading is recorded as mismatched"
        )
        # Kept, so what was graded can be compared with what the run made.
        stored = sink.put_tree(f"graded {role} snapshot", path)
        if stored is not None:
            graded[role] = stored
        mismatched.append(role)
    return graded, mismatched


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
    #: Whether :meth:`cleanup` removes ``folder`` (it was made by fetch_for_grading).
    temporary: bool = False

    def cleanup(self) -> None:
        """Remove what was fetched, when fetch_for_grading made the folder."""
        if self.temporary:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> GradingInputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


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
    nothing unverified is left behind. Records nothing. Use it as a context manager
    (``with fetch_for_grading(run) as inputs:``) and a temporary folder is removed
    on leaving; a ``dest`` given is the caller's to keep.
    """
    opened = store if isinstance(store, Store) else casstore.open_store(store)
    spec = os.fspath(manifest)
    digest, data = casstore.read_record_bytes(spec, opened)
    run = casstore.decode_record_as(RunManifest, data, spec)
    folder = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix="cas-grading-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _fetch(opened, digest, run, folder, temporary=dest is None)
    except BaseException:
        if dest is None:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _fetch(
    opened: Store, digest: str, run: RunManifest, folder: Path, *, temporary: bool
) -> GradingInputs:

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
    return GradingInputs(
        digest, run, folder, snapshot("initial"), snapshot("final"), trajectory, temporary
    )


def _run_ref(sink: Sink, manifest: str | os.PathLike[str]) -> tuple[Ref, RunManifest]:
    """The graded run's reference and manifest, from a sidecar file or from the store."""
    spec = os.fspath(manifest)
    digest, data = casstore.read_record_bytes(spec, sink.store)
    return Ref(digest, len(data)), casstore.decode_record_as(RunManifest, data, spec)
