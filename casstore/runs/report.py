"""``cas report``: a run, a grading or a suite (or two of a kind, compared) as one
self-contained HTML page people can look at, on a phone too."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from casstore.config import counted
from casstore.errors import CasError, UsageError
from casstore.format.manifest import GradingRecord, Record, Ref, RunManifest, SuiteRecord
from casstore.runs.diff import ABSENT, PARAMETERS, ManifestDiff, diff_gradings, diff_manifests
from casstore.runs.html import bars, cards, cell, esc, page, table, unified

if TYPE_CHECKING:
    from casstore.store.objects import Store
    from casstore.trees.diff import TreeDiff

#: Files up to this size, in UTF-8, get a text diff in the report.
TEXT_DIFF_BYTES = 64 << 10
#: Modified files shown with their text diff, at most.
TEXT_DIFFS = 20


def build_report(store: Store, a: str, b: str | None = None) -> str:
    """The page for record ``a`` (a digest, ref or sidecar), compared with ``b`` if given."""
    from casstore.runs.records import read_record

    digest_a, record_a = read_record(a, store)
    if b is None:
        return page(f"{_kind(record_a)} {digest_a[:19]}", _single(store, digest_a, record_a))
    digest_b, record_b = read_record(b, store)
    if type(record_a) is not type(record_b):
        raise UsageError(f"cas report compares two of a kind: {a} and {b} are not")
    body = [
        f"<h1>{esc(_kind(record_a))}s compared</h1>",
        cards([("a", _digest(digest_a)), ("b", _digest(digest_b))]),
    ]
    if isinstance(record_a, RunManifest) and isinstance(record_b, RunManifest):
        body += _run_comparison(store, record_a, record_b)
    elif isinstance(record_a, GradingRecord) and isinstance(record_b, GradingRecord):
        body += _grading_comparison(store, record_a, record_b)
    elif isinstance(record_a, SuiteRecord) and isinstance(record_b, SuiteRecord):
        body += _suite_comparison(store, record_a, record_b)
    body += ["<h2>a</h2>", *_overview(store, record_a), "<h2>b</h2>", *_overview(store, record_b)]
    return page(f"{_kind(record_a)}s compared", body)


def _kind(record: Record) -> str:
    if isinstance(record, RunManifest):
        return "run"
    return "grading" if isinstance(record, GradingRecord) else "suite"


def _digest(digest: str) -> str:
    return f'<span class="digest">{esc(digest)}</span>'


def _single(store: Store, digest: str, record: Record) -> list[str]:
    title = f"{_kind(record)} {record.name}" if isinstance(record, SuiteRecord) else _kind(record)
    return [
        f"<h1>{esc(title)}</h1>",
        f'<p class="muted">{_digest(digest)} · recorded {esc(record.created_at or "?")}</p>',
        *_overview(store, record),
    ]


def _overview(store: Store, record: Record) -> list[str]:
    out = []
    if isinstance(record, GradingRecord):
        out += _grading_scores(store, record)
    if isinstance(record, SuiteRecord):
        out += _suite_scores(record)
    if isinstance(record, RunManifest):
        out.append(
            cards(
                [
                    ("model", esc(record.orchestrator_model or "-")),
                    ("trajectory id", esc(record.trajectory_id or "-")),
                    ("seed", esc(record.seed)),
                    ("code", _digest(record.code.git_sha or "not a git checkout")),
                ]
            )
        )
    out.append("<h2>inputs and outputs</h2>")
    rows = [
        [cell(role), cell(ref.digest, mono=True), cell(_size(store, role, ref))]
        for role, ref in record.roles().items()
    ]
    out.append(table(["role", "digest", "size"], rows, raw=True))
    return out


def _size(store: Store, role: str, ref: Ref) -> str:
    from casstore.config import human_bytes

    if role.endswith("_snapshot") or role.startswith("graded:"):
        from casstore.graph.describe import describe

        try:
            info = describe(store, ref.digest)
        except CasError:
            return human_bytes(ref.size)
        if info.file_bytes is not None:
            return f"{counted(info.files or 0, 'files')}, {human_bytes(info.file_bytes)}"
    return human_bytes(ref.size)


def _grading_scores(store: Store, grading: GradingRecord) -> list[str]:
    score = "-" if grading.score is None else f"{grading.score:.4f}"
    out = [
        cards(
            [
                ("score", f'<span class="score">{esc(score)}</span>'),
                ("judge", esc(grading.judge_model or "-")),
                ("run", _digest(grading.run.digest)),
                ("snapshots graded", esc(", ".join(grading.graded_snapshots) or "-")),
            ]
        )
    ]
    if grading.mismatched:
        out.append(
            f"<p><b>Graded snapshots that are not the run's:</b> {esc(grading.mismatched)}</p>"
        )
    results = _verifier_results(store, grading)
    if results:
        out += ["<h2>grades</h2>", bars([(k, v, None) for k, v in results], two=False)]
    return out


def _verifier_results(store: Store, grading: GradingRecord) -> list[tuple[str, float | None]]:
    """Per-verifier scores from archipelago-shaped grades (``verifier_results``)."""
    if grading.grades is None or grading.grades.size > TEXT_DIFF_BYTES * 16:
        return []
    try:
        grades = json.loads(store.get_bytes(grading.grades.digest))
    except (CasError, ValueError, RecursionError):
        return []
    out = []
    for item in grades.get("verifier_results", []) if isinstance(grades, dict) else []:
        if isinstance(item, dict) and "verifier_id" in item:
            value = item.get("score")
            out.append(
                (str(item["verifier_id"]), value if isinstance(value, int | float) else None)
            )
    return out


def _suite_scores(suite: SuiteRecord) -> list[str]:
    mean = "-" if suite.overall.mean is None else f"{suite.overall.mean:.4f}"
    out = [
        cards(
            [
                ("mean score", f'<span class="score">{esc(mean)}</span>'),
                ("entries scored", esc(f"{suite.overall.count} of {len(suite.entries)}")),
            ]
        )
    ]
    for label, values in suite.by_label.items():
        if len(values) < len(suite.entries):  # a per-task chart says nothing the table does not
            out += [f"<h2>mean by {esc(label)}</h2>"]
            out.append(bars([(v, agg.mean, None) for v, agg in values.items()], two=False))
    rows = [
        [
            cell(" ".join(f"{k}={v}" for k, v in sorted(e.labels.items()))),
            cell("-" if e.score is None else f"{e.score:.4f}"),
            cell(e.grading.digest, mono=True),
        ]
        for e in suite.entries
    ]
    out += ["<h2>entries</h2>", table(["labels", "score", "grading"], rows, raw=True)]
    return out


# -- comparisons -------------------------------------------------------------------------


def _run_comparison(store: Store, a: RunManifest, b: RunManifest) -> list[str]:
    out = ["<h2>parameters</h2>"]
    rows = []
    for name in PARAMETERS:
        old, new = getattr(a, name), getattr(b, name)
        cls = "" if old == new else ("old", "new")
        rows.append(
            [
                cell(name),
                cell(_json(old), cls[0] if cls else ""),
                cell(_json(new), cls[1] if cls else ""),
            ]
        )
    out.append(table(["parameter", "a", "b"], rows, raw=True))
    out += _differences(store, diff_manifests(store, a, b))
    return out


def _grading_comparison(store: Store, a: GradingRecord, b: GradingRecord) -> list[str]:
    graded, runs = diff_gradings(store, a, b)
    score_a = "-" if a.score is None else f"{a.score:.4f}"
    score_b = "-" if b.score is None else f"{b.score:.4f}"
    out = [cards([("score a", esc(score_a)), ("score b", esc(score_b))])]
    out += ["<h2>grading</h2>", *_differences(store, graded)]
    if runs is not None:
        out += ["<h2>the runs graded</h2>", *_differences(store, runs)]
    return out


def _suite_comparison(store: Store, a: SuiteRecord, b: SuiteRecord) -> list[str]:
    from casstore.runs.suites import diff_suites

    result = diff_suites(store, a, b)
    match = result.match
    out = ["<h2>means</h2>"]
    rows = [result.overall] + [
        row for label, values in result.labels.items() if label != match for row in values
    ]
    out.append(
        table(
            ["", "a", "b", "difference"],
            (
                [
                    row.value,
                    _mean(row.a.mean, row.a.count),
                    _mean(row.b.mean, row.b.count),
                    "-" if row.delta is None else f"{row.delta:+.4f}",
                ]
                for row in rows
            ),
        )
    )
    out.append(
        '<p class="muted">bars: <span style="color:var(--a)">■ a</span> '
        '<span style="color:var(--b)">■ b</span></p>'
    )
    out.append(bars([(r.value, r.a.mean, r.b.mean) for r in rows], two=True))
    out.append(
        f"<h2>pairs whose scores differ ({len(result.pairs)}), most of the difference first</h2>"
    )
    out.append(
        table(
            [match, "labels", "a", "b", "difference", "inputs that differ"],
            (
                [
                    p.key,
                    " ".join(f"{k}={v}" for k, v in sorted(p.a.labels.items()) if k != match),
                    f"{p.a.score:.4f}",
                    f"{p.b.score:.4f}",
                    f"{p.delta:+.4f}",
                    ", ".join(p.differs) or "none",
                ]
                for p in result.pairs
            ),
        )
    )
    for side, entries in (("a", result.only_a), ("b", result.only_b)):
        if entries:
            keys = ", ".join(e.labels.get(match, "?") for e in entries)
            out.append(f"<p>Only in {side}: {esc(keys)}</p>")
    return out


def _mean(mean: float | None, count: int) -> str:
    return "-" if mean is None else f"{mean:.4f} ({count})"


def _json(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _differences(store: Store, result: ManifestDiff) -> list[str]:
    if not result:
        return ["<p>No differences.</p>"]
    rows = [
        [
            cell(d.role),
            cell(d.path or "digest"),
            cell(_json(d.old), "old"),
            cell(_json(d.new), "new"),
        ]
        for d in result.differences
    ]
    out = [table(["input", "what", "a", "b"], rows, raw=True)] if rows else []
    for role, note in result.unavailable.items():
        out.append(f'<p class="muted">{esc(role)}: contents not compared ({esc(note)})</p>')
    for role, tree in result.snapshots.items():
        out += [f"<h2>{esc(role)}: files</h2>", *_files(store, tree)]
    return out


def _files(store: Store, tree: TreeDiff) -> list[str]:
    rows = [
        [
            cell(
                change.kind,
                "new" if change.kind == "added" else "old" if change.kind == "removed" else "",
            ),
            cell(change.path, mono=True),
        ]
        for change in tree.changes
    ]
    out = [table(["change", "path"], rows, raw=True)]
    shown = 0
    for change in tree.modified:
        if shown == TEXT_DIFFS:
            break
        old, new = change.old, change.new
        if old is None or new is None or old.type != "file" or new.type != "file":
            continue
        if max(old.size, new.size) > TEXT_DIFF_BYTES:
            continue
        try:
            text_a = store.get_bytes(old.digest).decode("utf-8")
            text_b = store.get_bytes(new.digest).decode("utf-8")
        except (CasError, UnicodeDecodeError):
            continue
        out += [f"<h3><code>{esc(change.path)}</code></h3>", unified(text_a, text_b, change.path)]
        shown += 1
    return out
