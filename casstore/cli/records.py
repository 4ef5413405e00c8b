"""Commands that read records: manifest show, and diff (of trees and of runs)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from casstore.cli.common import EXIT_OK, Adder, open_from_args, print_json
from casstore.errors import CasError, UsageError

if TYPE_CHECKING:
    from casstore.store.objects import Store


def _kind(spec: str, store: Callable[[], Store]) -> tuple[str, str | None]:
    """(digest or file, record kind) of a diff operand, reading only its first bytes."""
    from casstore.format.records import HEAD_BYTES, record_kind
    from casstore.graph.closure import kind_of_stored

    if os.path.isfile(spec):
        with open(spec, "rb") as f:
            return spec, record_kind(f.read(HEAD_BYTES))
    opened = store()
    digest = opened.resolve(spec)
    return digest, kind_of_stored(opened, digest)


def cmd_diff(args: argparse.Namespace) -> int:
    from functools import cache

    store = cache(lambda: open_from_args(args))
    a, kind_a = _kind(args.a, store)
    b, kind_b = _kind(args.b, store)
    if kind_a == kind_b == "run-manifest":
        return _diff_runs(args, store, a, b)
    if not (kind_a == kind_b and kind_a is not None and kind_a.startswith("tree/")):
        raise UsageError(
            f"cas diff compares two trees or two run manifests; got {_what(kind_a)} "
            f"and {_what(kind_b)}"
        )
    return _diff_trees(args, store(), a, b)


def _what(kind: str | None) -> str:
    return "a blob" if kind is None else f"a {kind.split('/')[0]}"


def _diff_trees(args: argparse.Namespace, store: Store, a: str, b: str) -> int:
    from casstore.trees.diff import diff_trees

    result = diff_trees(store, a, b)
    if args.json:
        print_json({"a": a, "b": b, **_tree_diff_json(result)})
        return EXIT_OK
    print_tree_diff(result, indent="")
    return EXIT_OK


def _tree_diff_json(result: Any) -> dict[str, object]:
    return {"changes": [c.as_json() for c in result.changes], **result.summary()}


def print_tree_diff(result: Any, indent: str, limit: int | None = None) -> None:
    from casstore.cli.progress import human_bytes

    changes = result.changes
    for change in changes[:limit]:
        if change.old is None:
            print(f"{indent}+ {change.path}  ({_entry_size(change.new, human_bytes)})")
        elif change.new is None:
            print(f"{indent}- {change.path}  ({_entry_size(change.old, human_bytes)})")
        else:
            old, new = _entry_size(change.old, human_bytes), _entry_size(change.new, human_bytes)
            print(f"{indent}M {change.path}  ({old} -> {new})")
    if limit is not None and len(changes) > limit:
        print(f"{indent}... and {len(changes) - limit} more (--json lists all)")
    counts = result.summary()
    print(
        f"{indent}{counts['added']} added, {counts['removed']} removed, "
        f"{counts['modified']} modified"
    )


def _diff_runs(args: argparse.Namespace, store: Callable[[], Store], a: str, b: str) -> int:
    from casstore.format.manifest import RunManifest
    from casstore.runs.diff import ABSENT, diff_manifests
    from casstore.runs.records import read_record

    digest_a, run_a = read_record(a, store)
    digest_b, run_b = read_record(b, store)
    assert isinstance(run_a, RunManifest) and isinstance(run_b, RunManifest)
    try:
        opened: Store | None = store()
    except CasError:
        # Two sidecars can be compared without a store, parameters only.
        opened = None
    result = diff_manifests(opened, run_a, run_b)
    if args.json:
        print_json(
            {
                "a": digest_a,
                "b": digest_b,
                "kind": "run-manifest",
                "differences": [d.as_json() for d in result.differences],
                "snapshots": {
                    role: _tree_diff_json(tree) for role, tree in result.snapshots.items()
                },
                "unavailable": result.unavailable,
            }
        )
        return EXIT_OK
    print(f"a: {digest_a}\nb: {digest_b}")
    if not result:
        print("no differences")
        return EXIT_OK
    for role in result.roles():
        print(f"{role}:")
        for d in (d for d in result.differences if d.role == role):
            old = "(absent)" if d.old is ABSENT else _short_json(d.old)
            new = "(absent)" if d.new is ABSENT else _short_json(d.new)
            print(f"  {d.path or 'digest'}: {old} -> {new}")
        if role in result.snapshots:
            print_tree_diff(result.snapshots[role], indent="  ", limit=20)
        if role in result.unavailable:
            print(f"  (contents not compared: {result.unavailable[role]})")
    return EXIT_OK


def _short_json(value: object, width: int = 60) -> str:
    from casstore.format.digest import HEX_LENGTH, PREFIX

    if (
        isinstance(value, str)
        and value.startswith(PREFIX)
        and len(value) == len(PREFIX) + HEX_LENGTH
    ):
        return value  # digests print in full
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


def cmd_manifest_show(args: argparse.Namespace) -> int:
    import msgspec

    from casstore.format.manifest import RunManifest
    from casstore.runs.records import read_record

    digest, record = read_record(args.manifest, lambda: open_from_args(args))
    if args.json:
        print_json({"digest": digest, **msgspec.to_builtins(record)})
        return EXIT_OK
    if isinstance(record, RunManifest):
        _show_run(digest, record)
    else:
        _show_grading(digest, record)
    return EXIT_OK


def _show_common(title: str, digest: str, record: Any) -> None:
    code = record.code
    print(f"{title} {digest}")
    print(f"  schema        {record.schema_version}, created {record.created_at or '?'}")
    if code.git_sha:
        dirty = " (dirty)" if code.git_dirty else ""
        print(f"  code          git {code.git_sha}{dirty}")
    else:
        print("  code          not a git checkout")
    print(f"  versions      Python {code.python_version}, casstore {code.casstore_version}")


def _show_run(digest: str, run: Any) -> None:
    from casstore.format.manifest import REF_FIELDS

    _show_common("run manifest", digest, run)
    rows = [
        ("trajectory id", run.trajectory_id),
        ("model", run.orchestrator_model),
        ("extra args", json.dumps(run.orchestrator_extra_args, sort_keys=True)),
        ("seed", "none" if run.seed is None else str(run.seed)),
        ("deterministic", "yes" if run.deterministic else "no"),
        ("agent config", run.agent_config_id),
        ("config values", json.dumps(run.agent_config_values, sort_keys=True)),
    ]
    for label, value in rows:
        print(f"  {label:13} {value}")
    print("inputs and outputs:")
    roles = run.roles()
    for name in (*REF_FIELDS, *[r for r in roles if r not in REF_FIELDS]):
        _show_ref(name, roles.get(name))


def _show_grading(digest: str, grading: Any) -> None:
    _show_common("grading record", digest, grading)
    print(f"  {'score':13} {grading.score}")
    print(f"  {'judge model':13} {grading.judge_model}")
    print(f"  {'baseline':13} {grading.baseline_role or '-'}")
    print("inputs and outputs:")
    for name, ref in grading.roles().items():
        _show_ref(name, ref)


def _show_ref(name: str, ref: Any) -> None:
    from casstore.cli.progress import human_bytes

    if ref is None:
        print(f"  {name:20} (absent)")
    else:
        print(f"  {name:20} {ref.digest}  {human_bytes(ref.size)}")


def _entry_size(entry: Any, human: Callable[[float], str]) -> str:
    if entry.type == "file":
        return human(entry.size) + (", executable" if entry.executable else "")
    return f"symlink -> {entry.target}" if entry.type == "symlink" else "empty folder"


def register(add: Adder) -> None:
    p = add(
        "diff",
        cmd_diff,
        "show what differs between two trees (paths) or two run manifests (every input)",
    )
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("manifest", cmd_manifest_show, "inspect run manifests and grading records")
    manifest_sub = p.add_subparsers(dest="manifest_command", metavar="SUBCOMMAND")
    manifest_sub.required = True
    show = manifest_sub.add_parser(
        "show",
        help="summarise a run manifest or grading record",
        description="Summarise a run manifest or grading record: parameters, code, "
        "and every input and output by digest.",
    )
    show.add_argument("manifest", metavar="DIGEST|SIDECAR", help="a digest, tag, or sidecar file")
    show.add_argument("--json", action="store_true", help="print the record as JSON")
