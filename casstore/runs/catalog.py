"""The runs a store holds: its ``refs/runs/`` refs, read with their gradings
(``cas runs``)."""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from casstore.errors import CasError
from casstore.format.manifest import GradingRecord, RunManifest, SuiteRecord, decode

if TYPE_CHECKING:
    from casstore.store.objects import Store


@dataclass
class RunEntry:
    ref: str
    digest: str
    trajectory_id: str
    model: str
    created: str
    #: The latest grading's score, when the run has been graded.
    score: float | None = None
    grading: str | None = None

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def list_runs(
    store: Store, *, pattern: str | None = None, model: str | None = None
) -> list[RunEntry]:
    """Recorded runs, newest first; ``pattern`` is a glob over the ref name, ``model``
    the orchestrator model. Each named record is read once."""
    runs: list[RunEntry] = []
    for ref, digest in store.refs(kind_pattern("runs", pattern)).items():
        try:
            record = decode(store.get_record(digest), digest)
        except CasError:
            continue  # not a run manifest: listed by cas refs, not here
        if not isinstance(record, RunManifest) or (model and record.orchestrator_model != model):
            continue
        runs.append(
            RunEntry(
                ref, digest, record.trajectory_id, record.orchestrator_model, record.created_at
            )
        )
    by_digest = {run.digest: run for run in runs}
    gradings: list[tuple[str, str, GradingRecord]] = []
    for _ref, digest in store.refs("gradings/*").items():
        try:
            grading = decode(store.get_record(digest), digest)
        except CasError:
            continue
        if isinstance(grading, GradingRecord) and grading.run.digest in by_digest:
            gradings.append((grading.created_at, digest, grading))
    for _created, digest, grading in sorted(gradings, key=lambda g: g[0]):
        entry = by_digest[grading.run.digest]
        entry.score, entry.grading = grading.score, digest
    return sorted(runs, key=lambda r: (r.created, r.ref), reverse=True)


def kind_pattern(kind: str, pattern: str | None) -> str:
    """A glob over refs of ``kind``: ``runs/*``, or ``runs/<pattern>``."""
    if not pattern:
        return f"{kind}/*"
    return pattern if fnmatch.fnmatchcase(pattern, f"{kind}/*") else f"{kind}/{pattern}"


def keep_records(store: Store, digests: list[str]) -> dict[str, str]:
    """A ref for each run, grading and suite among ``digests`` that no ref names yet
    (``runs/<trajectory id>``, ``gradings/<its run's id>``, ``suites/<name>``, a taken
    name with a suffix), as recording gives one: imported records stay roots.
    Returns digest -> ref, for every record that has one now."""
    named = {digest: ref for ref, digest in store.refs("*").items()}
    kept: dict[str, str] = {}
    for digest in digests:
        if digest in named:
            kept[digest] = named[digest]
            continue
        try:
            record = decode(store.get_record(digest), digest)
        except CasError:
            continue  # a tree or a blob: not a record a ref is claimed for
        if isinstance(record, RunManifest):
            kind, name = "runs", record.trajectory_id or "run"
        elif isinstance(record, GradingRecord):
            try:
                run = decode(store.get_record(record.run.digest), record.run.digest)
            except CasError:
                run = None
            run_id = run.trajectory_id if isinstance(run, RunManifest) else ""
            kind, name = "gradings", run_id or "grading"
        elif isinstance(record, SuiteRecord):
            kind, name = "suites", record.name or "suite"
        else:
            continue
        kept[digest] = store.claim_ref(kind, name, digest)
    return kept
