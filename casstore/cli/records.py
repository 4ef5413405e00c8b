"""Commands that read records: manifest show, and diff (of trees, runs, gradings and
suites)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from casstore.cli.common import EXIT_OK, Adder, open_from_args, print_json
from casstore.errors import CasError, ObjectNotFound, UsageError

if TYPE_CHECKING:
    from casstore.store.objects import Store


@dataclass
class _Operand:
    """One side of ``cas diff``: a stored object or a local file or snapshot."""

    label: str
    kind: str | None
    #: For trees: the entries (read from the store, or computed from local files).
    entries: list[Any] | None = None


def _operand(spec: str, store: Callable[[], Store]) -> _Operand:
    """What ``spec`` is: a sidecar (a record file), a local snapshot (a folder or an
    archive, its tree computed without storing anything), or a digest, prefix or ref."""
    from casstore.format import tree
    from casstore.format.records import HEAD_BYTES, is_tree_kind, record_kind
    from casstore.graph.closure import kind_of_stored

    if os.path.exists(spec):
        if os.path.isfile(spec):
            with open(spec, "rb") as f:
                kind = record_kind(f.read(HEAD_BYTES))
            if kind is not None and not is_tree_kind(kind):
                return _Operand(spec, kind)
        from casstore.trees.ingest import local_tree

        digest, entries = local_tree(spec)
        return _Operand(spec, tree.KIND, entries)
    missing = ObjectNotFound(spec, f"{spec}: no such file or folder")
    if spec.startswith(("/", "./", "../", "~")) or spec.endswith("/"):  # a path, not a ref
        raise missing
    opened = store()
    try:
        digest = opened.resolve(spec)
    except ObjectNotFound:
        if _names_an_archive(spec):  # "no ref named x.tar" would send the user to the store
            raise missing from None
        raise
    kind = kind_of_stored(opened, digest)
    if is_tree_kind(kind):
        from casstore.trees.checkout import load

        return _Operand(digest, kind, load(opened, digest))
    return _Operand(digest, kind)


def _names_an_archive(spec: str) -> bool:
    from casstore.trees.checkout import format_for

    return format_for(spec, None) != "dir"


def cmd_diff(args: argparse.Namespace) -> int:
    from functools import cache

    from casstore.format.records import GRADING_KIND, RUN_KIND, SUITE_KIND, is_tree_kind

    store = cache(lambda: open_from_args(args))
    a, b = _operand(args.a, store), _operand(args.b, store)
    if a.kind == b.kind == RUN_KIND:
        return _diff_runs(args, store, a.label, b.label)
    if a.kind == b.kind == GRADING_KIND:
        return _diff_gradings(args, store, a.label, b.label)
    if a.kind == b.kind == SUITE_KIND:
        from casstore.cli.suites import diff_suites_command

        return diff_suites_command(args, store(), a.label, b.label)
    if not (is_tree_kind(a.kind) and is_tree_kind(b.kind)):
        raise UsageError(
            "cas diff compares two snapshots (stored trees, folders or archives), two runs, "
            f"two gradings or two suites; got {_what(a.kind)} and {_what(b.kind)}"
        )
    from casstore.trees.diff import diff_entries

    assert a.entries is not None and b.entries is not None
    result = diff_entries(a.entries, b.entries)
    if args.json:
        print_json({"a": a.label, "b": b.label, **_tree_diff_json(result)})
        return EXIT_OK
    print_tree_diff(result, indent="")
    return EXIT_OK


def _what(kind: str | None) -> str:
    return "a blob" if kind is None else f"a {kind.split('/')[0]}"


def _tree_diff_json(result: Any) -> dict[str, object]:
    return {"changes": [c.as_json() for c in result.changes], **result.summary()}


def print_tree_diff(result: Any, indent: str, limit: int | None = None) -> None:
    from casstore.cli.output import escape
    from casstore.config import human_bytes

    changes = result.changes
    for change in changes[:limit]:
        path = escape(change.path)  # a name cannot forge a line of the report
        if change.old is None:
            print(f"{indent}+ {path}  ({_entry_size(change.new, human_bytes)})")
        elif change.new is None:
            print(f"{indent}- {path}  ({_entry_size(change.old, human_bytes)})")
        else:
            old, new = _entry_size(change.old, human_bytes), _entry_size(change.new, human_bytes)
            print(f"{indent}M {path}  ({old} -> {new})")
    if limit is not None and len(changes) > limit:
        print(f"{indent}... and {len(changes) - limit} more (--json lists all)")
    counts = result.summary()
    print(
        f"{indent}{counts['added']} added, {counts['removed']} removed, "
        f"{counts['modified']} modified"
    )


def _diff_runs(args: argparse.Namespace, store: Callable[[], Store], a: str, b: str) -> int:
    from casstore.format.manifest import RunManifest
    from casstore.runs.diff import diff_manifests
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
        print_json({"a": digest_a, "b": digest_b, "kind": "run-manifest", **_diff_json(result)})
        return EXIT_OK
    print(f"a: {digest_a}\nb: {digest_b}")
    _print_diff(result, "")
    return EXIT_OK


def _diff_gradings(args: argparse.Namespace, store: Callable[[], Store], a: str, b: str) -> int:
    from casstore.format.manifest import GradingRecord
    from casstore.runs.diff import diff_gradings
    from casstore.runs.records import read_record

    digest_a, grading_a = read_record(a, store)
    digest_b, grading_b = read_record(b, store)
    assert isinstance(grading_a, GradingRecord) and isinstance(grading_b, GradingRecord)
    try:
        opened: Store | None = store()
    except CasError:
        opened = None
    result, runs = diff_gradings(opened, grading_a, grading_b)
    if args.json:
        print_json(
            {
                "a": digest_a,
                "b": digest_b,
                "kind": "grading-record",
                **_diff_json(result),
                "runs": None if runs is None else _diff_json(runs),
            }
        )
        return EXIT_OK
    print(f"a: {digest_a}\nb: {digest_b}")
    _print_diff(result, "")
    if runs is not None:
        print(f"runs: {grading_a.run.digest} -> {grading_b.run.digest}")
        _print_diff(runs, "  ")
    return EXIT_OK


def _diff_json(result: Any) -> dict[str, object]:
    return {
        "differences": [d.as_json() for d in result.differences],
        "snapshots": {role: _tree_diff_json(tree) for role, tree in result.snapshots.items()},
        "unavailable": result.unavailable,
        "same_value": result.same_value,
    }


def _print_diff(result: Any, indent: str) -> None:
    from casstore.runs.diff import ABSENT

    if not result:
        print(f"{indent}no differences")
        return
    for role in result.roles():
        print(f"{indent}{role}:")
        for d in (d for d in result.differences if d.role == role):
            old = "(absent)" if d.old is ABSENT else _short_json(d.old)
            new = "(absent)" if d.new is ABSENT else _short_json(d.new)
            print(f"{indent}  {d.path or 'digest'}: {old} -> {new}")
        if role in result.snapshots:
            print_tree_diff(result.snapshots[role], indent=indent + "  ", limit=20)
        if role in result.unavailable:
            print(f"{indent}  (contents not compared: {result.unavailable[role]})")
        if role in result.same_value:
            print(f"{indent}  (the same JSON value: only key order or whitespace differ)")


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

    from casstore.format.manifest import GradingRecord, RunManifest
    from casstore.runs.records import read_record

    try:
        store: Store | None = open_from_args(args)
    except CasError:
        store = None  # a sidecar can be shown without a store
    digest, record = read_record(args.manifest, store)
    if args.json:
        print_json({"digest": digest, **msgspec.to_builtins(record)})
        return EXIT_OK
    if isinstance(record, RunManifest):
        _show_run(digest, record, store)
    elif isinstance(record, GradingRecord):
        _show_grading(digest, record, store)
    else:
        from casstore.cli.suites import show_suite

        show_suite(digest, record)
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


def _show_run(digest: str, run: Any, store: Store | None) -> None:
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
    if run.invocation is not None:
        import shlex

        from casstore.cli.output import escape

        command = shlex.join([*run.invocation.program, *run.invocation.args])
        where = f" (in {run.invocation.cwd})" if run.invocation.cwd else ""
        rows.append(("command", escape(command) + where))
    rows += [(name, value) for name, value in sorted(run.environment.items())]
    for label, value in rows:
        print(f"  {label:13} {value}")
    print("inputs and outputs:")
    roles = run.roles()
    names = (*REF_FIELDS, *[r for r in roles if r not in REF_FIELDS])
    width = max(20, *map(len, names))
    for name in names:
        _show_ref(name, roles.get(name), store, snapshot=name.endswith("_snapshot"), width=width)


def _show_grading(digest: str, grading: Any, store: Store | None) -> None:
    _show_common("grading record", digest, grading)
    print(f"  {'score':13} {grading.score}")
    print(f"  {'judge model':13} {grading.judge_model}")
    print(f"  {'baseline':13} {grading.baseline_role or '-'}")
    print("inputs and outputs:")
    for name, ref in grading.roles().items():
        _show_ref(name, ref, store, snapshot=name.endswith("_snapshot"))


def _show_ref(
    name: str, ref: Any, store: Store | None, *, snapshot: bool = False, width: int = 20
) -> None:
    from casstore.config import counted, human_bytes

    if ref is None:
        print(f"  {name:{width}} (absent)")
        return
    size = human_bytes(ref.size)
    if snapshot:
        # The reference's size is its tree record's; what matters is what it holds.
        size = f"tree record {size}"
        if store is not None:
            from casstore.graph.describe import describe

            try:
                info = describe(store, ref.digest)
            except CasError:
                pass
            else:
                if info.file_bytes is not None:
                    size = f"{counted(info.files or 0, 'files')}, {human_bytes(info.file_bytes)}"
    print(f"  {name:{width}} {ref.digest}  {size}")


def _entry_size(entry: Any, human: Callable[[float], str]) -> str:
    from casstore.cli.output import escape

    if entry.type == "file":
        return human(entry.size) + (", executable" if entry.executable else "")
    return f"symlink -> {escape(entry.target)}" if entry.type == "symlink" else "empty folder"


def register(add: Adder) -> None:
    p = add(
        "diff",
        cmd_diff,
        "show what differs between two snapshots (file by file), runs (input by input), "
        "gradings, or suites (per label, and the pairs that make the difference)",
    )
    p.add_argument("a", metavar="A", help="a digest, ref or sidecar; or a folder or archive")
    p.add_argument("b", metavar="B", help="the same: any mix of stored and local snapshots")
    p.add_argument(
        "--match",
        default="task",
        metavar="LABEL",
        help="for two suites: the label pairing their entries (default: task)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("manifest", cmd_manifest_show, "inspect run manifests, gradings and suite records")
    manifest_sub = p.add_subparsers(dest="manifest_command", metavar="SUBCOMMAND")
    manifest_sub.required = True
    show = manifest_sub.add_parser(
        "show",
        help="summarise a run manifest, grading record or suite",
        description="Summarise a run manifest or grading record: parameters, code, "
        "and every input and output by digest.",
    )
    show.add_argument("manifest", metavar="DIGEST|SIDECAR", help="a digest, tag, or sidecar file")
    show.add_argument("--json", action="store_true", help="print the record as JSON")
