"""Suites: how per-task grades became a reported number, recorded so it can be traced.

A suite record lists grading records with labels (``domain``, ``task``) and the
scores they hold, and the aggregates computed from them (the overall mean, and
the mean per label value). ``cas verify`` re-reads every grading and recomputes
every aggregate; ``cas diff`` of two suites matches entries by a label and ranks
the pairs whose scores differ by how much of the difference they make, naming
the inputs that differ between their runs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from casstore.errors import CasError, ManifestError
from casstore.format.manifest import (
    Aggregate,
    GradingRecord,
    Ref,
    RunManifest,
    SuiteEntry,
    SuiteRecord,
    aggregate,
    decode_as,
    encode,
    utc_timestamp,
)
from casstore.runs.diff import invocation_as_compared
from casstore.runs.records import read_record_bytes

if TYPE_CHECKING:
    from casstore.store.objects import Store

#: Reads of grading records and run manifests in flight at once (round trips on S3).
READS = 16


def _grading(store: Store, digest: str) -> GradingRecord:
    return decode_as(GradingRecord, store.get_record(digest), digest)


def record_suite(
    store: Store,
    name: str,
    entries: Sequence[tuple[str | os.PathLike[str], Mapping[str, str]]],
    *,
    ref: bool = True,
) -> tuple[str, SuiteRecord]:
    """Store a suite of graded tasks: each entry is a grading record (digest, ref or
    sidecar) and its labels. Returns the suite's digest and record; with ``ref`` it is
    kept as ``suites/<name>`` (``name-2``... when taken)."""
    if not name:
        raise ValueError("a suite has a name")

    def one(spec: str | os.PathLike[str], labels: Mapping[str, str]) -> SuiteEntry:
        path = os.fspath(spec)
        digest, data = read_record_bytes(path, store)
        grading = decode_as(GradingRecord, data, path)
        if not store.has(digest):  # a sidecar: the suite must reach what it names
            store.put_bytes(data)
        labels = {str(k): str(v) for k, v in labels.items()}
        return SuiteEntry(grading=Ref(digest, len(data)), labels=labels, score=grading.score)

    with ThreadPoolExecutor(READS) as pool:
        made = list(pool.map(lambda e: one(*e), entries))
    overall, by_label = aggregate(made)
    suite = SuiteRecord(
        created_at=utc_timestamp(), name=name, entries=made, overall=overall, by_label=by_label
    )
    digest = store.put_bytes(encode(suite)).digest
    if ref:
        store.claim_ref("suites", name, digest)
    return digest, suite


def suite_problems(store: Store, suite: SuiteRecord) -> list[str]:
    """What in ``suite`` does not follow from its grading records: an entry's score that
    is not its grading's, an aggregate that is not the entries'. Empty when sound."""
    problems = []
    with ThreadPoolExecutor(READS) as pool:
        gradings = list(pool.map(lambda e: _try_grading(store, e.grading.digest), suite.entries))
    for entry, grading in zip(suite.entries, gradings, strict=True):
        if isinstance(grading, str):
            problems.append(f"entry {_label(entry)}: {grading}")
        elif grading.score != entry.score:
            problems.append(
                f"entry {_label(entry)}: records score {entry.score}, its grading "
                f"{entry.grading.digest} holds {grading.score}"
            )
    actual = [
        SuiteEntry(grading=e.grading, labels=e.labels, score=g.score)
        for e, g in zip(suite.entries, gradings, strict=True)
        if not isinstance(g, str)
    ]
    if len(actual) < len(suite.entries):
        return problems  # the aggregates cannot be recomputed without every grading
    overall, by_label = aggregate(actual)
    if overall != suite.overall:
        problems.append(
            f"aggregate overall: stored {_show(suite.overall)}, its entries give {_show(overall)}"
        )
    for key in sorted(by_label.keys() | suite.by_label.keys()):
        stored, recomputed = suite.by_label.get(key, {}), by_label.get(key, {})
        for value in sorted(stored.keys() | recomputed.keys()):
            was, now = stored.get(value), recomputed.get(value)
            if was != now:
                problems.append(
                    f"aggregate {key}={value}: stored {_show(was)}, its entries give {_show(now)}"
                )
    return problems


def _try_grading(store: Store, digest: str) -> GradingRecord | str:
    try:
        return _grading(store, digest)
    except (CasError, OSError) as exc:
        return str(exc)


def _show(value: Aggregate | None) -> str:
    if value is None:
        return "absent"
    return f"mean {value.mean} over {value.count}"


def _label(entry: SuiteEntry) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(entry.labels.items())) or entry.grading.digest


# -- comparing two suites -------------------------------------------------------------

#: Inputs a pair's runs may differ in, by the name a summary gives them.
_RUN_INPUTS = {
    "orchestrator_model": "model",
    "orchestrator_extra_args": "extra args",
    "seed": "seed",
    "agent_config": "agent config",
    "agent_config_values": "agent config",
    "orchestrator_config": "orchestrator config",
    "initial_messages": "initial_messages",
    "mcp_config": "mcp_config",
    "initial_snapshot": "initial_snapshot",
    "environment": "environment",
    "packages": "packages",
}
_GRADING_INPUTS = {
    "judge_model": "judge",
    "grading_settings": "grading config",
    "verifiers": "grading config",
    "eval_configs": "grading config",
    "scoring_config": "grading config",
}


@dataclass
class Pair:
    key: str
    a: SuiteEntry
    b: SuiteEntry
    #: b's score minus a's.
    delta: float
    #: The share of the overall difference this pair makes.
    contribution: float
    #: What differs between the two gradings and their runs (inputs only).
    differs: list[str] = field(default_factory=list)


@dataclass
class LabelDiff:
    value: str
    a: Aggregate
    b: Aggregate

    @property
    def delta(self) -> float | None:
        if self.a.mean is None or self.b.mean is None:
            return None
        return self.b.mean - self.a.mean


@dataclass
class SuiteDiff:
    match: str
    overall: LabelDiff
    #: Label -> value -> the means on each side (every label the suites use).
    labels: dict[str, list[LabelDiff]]
    only_a: list[SuiteEntry]
    only_b: list[SuiteEntry]
    #: Matched pairs whose scores differ, those that make most of the difference first.
    pairs: list[Pair]

    def as_json(self) -> dict[str, Any]:
        def side(d: LabelDiff) -> dict[str, Any]:
            return {
                "value": d.value,
                "a": {"mean": d.a.mean, "count": d.a.count},
                "b": {"mean": d.b.mean, "count": d.b.count},
                "difference": d.delta,
            }

        def entry(e: SuiteEntry) -> dict[str, Any]:
            return {"grading": e.grading.digest, "labels": e.labels, "score": e.score}

        return {
            "match": self.match,
            "overall": side(self.overall),
            "labels": {k: [side(d) for d in v] for k, v in self.labels.items()},
            "only_a": [entry(e) for e in self.only_a],
            "only_b": [entry(e) for e in self.only_b],
            "pairs": [
                {
                    "key": p.key,
                    "a": entry(p.a),
                    "b": entry(p.b),
                    "difference": p.delta,
                    "contribution": p.contribution,
                    "differs": p.differs,
                }
                for p in self.pairs
            ],
        }


def diff_suites(store: Store, a: SuiteRecord, b: SuiteRecord, *, match: str = "task") -> SuiteDiff:
    """Compare two suites: per label value, the entries on one side only, and the
    matched pairs (by the label ``match``) whose scores differ, ranked."""
    side_a, side_b = _by_key(a, match), _by_key(b, match)
    keys = sorted(side_a.keys() & side_b.keys())
    labels: dict[str, list[LabelDiff]] = {}
    for label in sorted(a.by_label.keys() | b.by_label.keys()):
        values = a.by_label.get(label, {}).keys() | b.by_label.get(label, {}).keys()
        labels[label] = [
            LabelDiff(
                value,
                a.by_label.get(label, {}).get(value, Aggregate(None, 0)),
                b.by_label.get(label, {}).get(value, Aggregate(None, 0)),
            )
            for value in sorted(values)
        ]
    overall = LabelDiff("overall", a.overall, b.overall)
    total = overall.delta or 0.0
    pairs = []
    for key in keys:
        ea, eb = side_a[key], side_b[key]
        if ea.score is None or eb.score is None or ea.score == eb.score:
            continue
        delta = eb.score - ea.score
        pairs.append(Pair(key, ea, eb, delta, delta / max(len(keys), 1)))
    # Those pulling the way the suites differ come first, the largest first.
    direction = math.copysign(1.0, total) if total else 1.0
    pairs.sort(key=lambda p: (-(p.delta * direction), -abs(p.delta), p.key))
    with ThreadPoolExecutor(READS) as pool:
        for pair, differs in zip(pairs, pool.map(lambda p: _differs(store, p), pairs), strict=True):
            pair.differs = differs
    return SuiteDiff(
        match,
        overall,
        labels,
        only_a=[side_a[k] for k in sorted(side_a.keys() - side_b.keys())],
        only_b=[side_b[k] for k in sorted(side_b.keys() - side_a.keys())],
        pairs=pairs,
    )


def _by_key(suite: SuiteRecord, match: str) -> dict[str, SuiteEntry]:
    out: dict[str, SuiteEntry] = {}
    for entry in suite.entries:
        key = entry.labels.get(match)
        if key is None:
            raise ManifestError(
                f"suite {suite.name!r}: an entry has no {match!r} label to match it by "
                f"({_label(entry)}); use --match with a label every entry has"
            )
        if key in out:
            raise ManifestError(f"suite {suite.name!r}: two entries have {match}={key}")
        out[key] = entry
    return out


def _differs(store: Store, pair: Pair) -> list[str]:
    """Which inputs of the pair's gradings and runs differ (by digest: cheap)."""
    try:
        ga, gb = _grading(store, pair.a.grading.digest), _grading(store, pair.b.grading.digest)
        ra = decode_as(RunManifest, store.get_record(ga.run.digest), ga.run.digest)
        rb = decode_as(RunManifest, store.get_record(gb.run.digest), gb.run.digest)
    except (CasError, OSError) as exc:
        return [f"(not compared: {exc})"]
    found: dict[str, None] = {}
    for fieldname, name in _RUN_INPUTS.items():
        if getattr(ra, fieldname) != getattr(rb, fieldname):
            found[name] = None
    # The runner's command line, where its input files lay aside (their contents are
    # the inputs above).
    if invocation_as_compared(ra.invocation) != invocation_as_compared(rb.invocation):
        found["invocation"] = None
    if ra.configs != rb.configs:
        found["configs"] = None
    for fieldname, name in _GRADING_INPUTS.items():
        if getattr(ga, fieldname) != getattr(gb, fieldname):
            found[name] = None
    return list(found)
