"""``cas suite create`` and ``cas suite show``, and how ``cas diff`` shows two suites."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from casstore.cli.common import EXIT_OK, Adder, open_from_args, print_json
from casstore.errors import UsageError

if TYPE_CHECKING:
    from casstore.format.manifest import Aggregate, SuiteRecord
    from casstore.store.objects import Store


def _labels(specs: list[str]) -> dict[str, str]:
    out = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"--label takes KEY=VALUE, not {spec!r}")
        out[key] = value
    return out


def _entries_file(path: str) -> list[tuple[str, dict[str, str]]]:
    """``[{"grading": DIGEST|SIDECAR, "labels": {...}}, ...]`` from a JSON file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--entries {path}: {exc}") from None
    if not isinstance(data, list):
        raise UsageError(f"--entries {path}: a JSON list of {{grading, labels}} objects")
    out = []
    for item in data:
        labels = item.get("labels", {}) if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(item.get("grading"), str):
            raise UsageError(f'--entries {path}: each entry has a "grading" (digest or file)')
        if not isinstance(labels, dict):
            raise UsageError(f'--entries {path}: "labels" is an object of strings')
        out.append((item["grading"], {str(k): str(v) for k, v in labels.items()}))
    return out


def cmd_suite_create(args: argparse.Namespace) -> int:
    from casstore.config import counted
    from casstore.runs.suites import record_suite
    from casstore.store.refs import named_ref

    labels = _labels(args.label)
    entries = [(spec, labels) for spec in args.gradings]
    if args.entries:
        entries += [(spec, {**labels, **own}) for spec, own in _entries_file(args.entries)]
    if not entries:
        raise UsageError("cas suite create needs GRADING arguments or --entries FILE")
    named_ref("suites", args.name)  # a bad name is refused, not renamed
    store = open_from_args(args)
    digest, suite = record_suite(store, args.name, entries)
    ref = next((r for r, d in store.refs(f"suites/{args.name}*").items() if d == digest), None)
    if args.json:
        print_json({"digest": digest, "ref": ref, "entries": len(suite.entries)})
        return EXIT_OK
    print(f"{digest}  {ref or ''}")
    print(f"{counted(len(suite.entries), 'entries')}; {_mean(suite.overall)}")
    return EXIT_OK


def cmd_suite_show(args: argparse.Namespace) -> int:
    import msgspec

    from casstore.format.manifest import SuiteRecord, decode_as
    from casstore.runs.records import read_record_bytes

    store = open_from_args(args)
    digest, data = read_record_bytes(args.suite, store)
    suite = decode_as(SuiteRecord, data, args.suite)
    if args.json:
        print_json({"digest": digest, **msgspec.to_builtins(suite)})
        return EXIT_OK
    show_suite(digest, suite)
    return EXIT_OK


def _mean(value: Aggregate) -> str:
    mean = "-" if value.mean is None else f"{value.mean:.4f}"
    return f"mean {mean} over {value.count} scored"


def show_suite(digest: str, suite: SuiteRecord) -> None:
    from casstore.cli.output import escape

    print(f"suite {digest}")
    print(f"  name          {escape(suite.name)}")
    print(f"  created       {suite.created_at or '?'}")
    print(f"  overall       {_mean(suite.overall)}")
    for label, values in suite.by_label.items():
        print(f"by {escape(label)}:")
        width = max(len(v) for v in values)
        for value, agg in values.items():
            print(f"  {escape(value):{width}}  {_mean(agg)}")
    print("entries:")
    for entry in suite.entries:
        labels = " ".join(f"{k}={v}" for k, v in sorted(entry.labels.items()))
        score = "-" if entry.score is None else f"{entry.score:.4f}"
        print(f"  {score:>7}  {entry.grading.digest}  {escape(labels)}")


def diff_suites_command(args: argparse.Namespace, store: Store, a: str, b: str) -> int:
    from casstore.cli.output import escape
    from casstore.format.manifest import SuiteRecord, decode_as
    from casstore.runs.records import read_record_bytes
    from casstore.runs.suites import diff_suites

    digest_a, data_a = read_record_bytes(a, store)
    digest_b, data_b = read_record_bytes(b, store)
    suite_a = decode_as(SuiteRecord, data_a, a)
    suite_b = decode_as(SuiteRecord, data_b, b)
    result = diff_suites(store, suite_a, suite_b, match=args.match)
    if args.json:
        print_json({"a": digest_a, "b": digest_b, "kind": "suite-record", **result.as_json()})
        return EXIT_OK
    print(f"a: {digest_a}  {escape(suite_a.name)}\nb: {digest_b}  {escape(suite_b.name)}")
    print(f"overall: {_side(result.overall)}")
    for label, rows in result.labels.items():
        if label == args.match:
            continue  # one row per task says nothing the pairs below do not
        print(f"by {escape(label)}:")
        width = max(len(r.value) for r in rows)
        for row in rows:
            print(f"  {escape(row.value):{width}}  {_side(row)}")
    for side, entries in (("a", result.only_a), ("b", result.only_b)):
        for entry in entries:
            print(f"only in {side}: {args.match}={escape(entry.labels.get(args.match, ''))}")
    if result.pairs:
        print(f"pairs whose scores differ ({len(result.pairs)}), most of the difference first:")
    for pair in result.pairs:
        others = ", ".join(f"{k}={v}" for k, v in sorted(pair.a.labels.items()) if k != args.match)
        shown = f" ({escape(others)})" if others else ""
        print(
            f"  {args.match}={escape(pair.key)}{shown}: {pair.a.score:.4f} -> "
            f"{pair.b.score:.4f} ({pair.delta:+.4f}); differs: "
            f"{', '.join(pair.differs) or 'no input (the same inputs scored differently)'}"
        )
    return EXIT_OK


def _side(row: Any) -> str:
    def mean(agg: Aggregate) -> str:
        return "-" if agg.mean is None else f"{agg.mean:.4f} ({agg.count})"

    delta = "" if row.delta is None else f"  {row.delta:+.4f}"
    return f"{mean(row.a)} -> {mean(row.b)}{delta}"


def register(add: Adder) -> None:
    p = add("suite", cmd_suite_create, "record and inspect suites: graded tasks and their means")
    sub = p.add_subparsers(dest="suite_command", metavar="SUBCOMMAND")
    sub.required = True
    create = sub.add_parser(
        "create",
        help="record a suite of grading records, with labels, and its means",
        description="Record a suite: grading records (digests, refs or sidecars) with labels "
        "such as domain=Law task=t-17, and the means they give overall and per label value "
        "(cas verify recomputes them). Refs it as suites/NAME.",
    )
    create.set_defaults(func=cmd_suite_create)
    create.add_argument("gradings", nargs="*", metavar="GRADING")
    create.add_argument("--name", required=True, help="the suite's name (its ref)")
    create.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label of every GRADING given (and a default for --entries); repeatable",
    )
    create.add_argument(
        "--entries",
        metavar="FILE",
        help='a JSON list of {"grading": DIGEST|SIDECAR, "labels": {"task": ..., ...}}',
    )
    create.add_argument("--json", action="store_true", help="print a JSON summary")
    show = sub.add_parser(
        "show",
        help="a suite's means overall and per label value, and its entries",
        description="Show a suite's means overall and per label value, and its entries.",
    )
    show.set_defaults(func=cmd_suite_show)
    show.add_argument("suite", metavar="SUITE", help="digest, ref (suites/NAME) or file")
    show.add_argument("--json", action="store_true", help="print the record as JSON")
