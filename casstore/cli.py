"""The ``cas`` command. The only place that prints or exits.

Heavy modules (the store, fsspec, s3fs) are imported inside the commands, so
``cas --help`` and ``cas --version`` start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from casstore._version import __version__
from casstore.errors import (
    CasError,
    IntegrityError,
    InvalidDigest,
    InvalidRefName,
    ObjectNotFound,
)

if TYPE_CHECKING:
    from casstore.store import ObjectInfo, Store

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTEGRITY = 4

EPILOG = """\
digests:
  Digests print in full as blake3:<64 hex>. Where a command takes a digest it
  also takes bare hex, a unique prefix of at least 8 hex characters, or a tag.

store:
  --store URL, else $CAS_STORE, else [store] url in the nearest store.toml
  (current folder or its parents), else the embedded store .cas/ beside it.

exit codes:
  0  success
  1  other error (I/O, configuration, not a store, read-only store, bad record)
  2  usage error (bad arguments, invalid digest or tag name)
  3  not found (object, tag or prefix; a reference that dangles)
  4  integrity failure (bytes that do not match their digest, a damaged bundle,
     local files that do not match a run)
"""


class UsageError(CasError, ValueError):
    """Arguments that parse but make no sense together."""


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, InvalidDigest | InvalidRefName | UsageError):
        return EXIT_USAGE
    if isinstance(exc, IntegrityError):
        return EXIT_INTEGRITY
    if isinstance(exc, ObjectNotFound):
        return EXIT_NOT_FOUND
    return EXIT_ERROR


def _open(args: argparse.Namespace) -> Store:
    from casstore.store import open_store

    return open_store(args.store, cache=not args.no_cache, read_only=args.read_only)


def _progress(label: str, total: int | None, unit: str = "bytes") -> Any:
    from casstore.progress import ProgressBar

    return ProgressBar(label, total, unit=unit)


def _print_json(obj: object) -> None:
    print(json.dumps(obj, sort_keys=False))


# -- commands -----------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from casstore.config import ENV_STORE, FILENAME, find_config
    from casstore.store import init_store

    url = args.url or args.store
    if not url and not os.environ.get(ENV_STORE) and find_config() is None:
        # Nothing configured anywhere: this folder gets a store.toml naming an embedded store.
        with open(FILENAME, "x", encoding="utf-8") as f:
            f.write(STORE_TOML_TEMPLATE)
        print(f"wrote {FILENAME}")
    store, created = init_store(url)
    print(f"{'initialized empty store' if created else 'already a store'}: {store.url}")
    return EXIT_OK


STORE_TOML_TEMPLATE = """\
# casstore configuration: see the README.
[store]
# With no url, the store is the folder .cas/ beside this file.
# url = "s3://bucket/prefix"
compression_level = 3
"""


def _info_json(info: ObjectInfo, **extra: object) -> dict[str, object]:
    return {
        "digest": info.digest,
        "size": info.size,
        "stored_size": info.stored_size,
        "encoding": info.encoding,
        **extra,
    }


def cmd_put(args: argparse.Namespace) -> int:
    store = _open(args)
    if args.tree:
        return _put_trees(args, store)
    for path in args.paths:
        if path == "-":
            with _progress("put -", None) as bar:
                info = store.put_stream(sys.stdin.buffer, progress=bar)
        else:
            if os.path.isdir(path):
                raise UsageError(f"{path} is a directory")
            try:
                total = os.path.getsize(path)
            except OSError as exc:
                raise CasError(f"cannot read {path}: {exc.strerror or exc}") from None
            with _progress(f"put {os.path.basename(path)}", total) as bar:
                info = store.put_file(path, progress=bar)
        if args.json:
            _print_json({"digest": info.digest, "size": info.size, "path": path})
        else:
            print(f"{info.digest}  {path}")
    return EXIT_OK


#: Objects up to this size are verified in memory before reaching stdout.
SPOOL_LIMIT = 64 << 20


def _put_trees(args: argparse.Namespace, store: Store) -> int:
    for source in args.paths:
        with _progress(f"put {os.path.basename(source) or source}", None) as bar:
            info = store.put_tree(source, progress=bar)
        if args.json:
            _print_json(_tree_json(info, source))
        else:
            print(f"{info.digest}  {source}")
    return EXIT_OK


def _tree_json(info: Any, source: str) -> dict[str, object]:
    return {
        "digest": info.digest,
        "size": info.size,
        "path": source,
        "files": info.files,
        "file_bytes": info.file_bytes,
    }


def cmd_tree(args: argparse.Namespace) -> int:
    from casstore.config import load_config, parse_size
    from casstore.snapshot import tree_digest

    limit = parse_size(load_config().file.tree.max_bytes)
    for source in args.sources:
        info = tree_digest(source, max_bytes=limit)
        if args.json:
            _print_json(_tree_json(info, source))
        else:
            print(f"{info.digest}  {source}")
    return EXIT_OK


def _kind(spec: str, store: Callable[[], Store]) -> tuple[str, str | None]:
    """(digest or file, record kind) of a diff operand, reading only its first bytes."""
    from casstore.closure import record_kind
    from casstore.verification import kind_of_stored

    if os.path.isfile(spec):
        with open(spec, "rb") as f:
            return spec, record_kind(f.read(64))
    opened = store()
    digest = opened.resolve(spec)
    return digest, kind_of_stored(opened, digest)


def cmd_diff(args: argparse.Namespace) -> int:
    from functools import cache

    store = cache(lambda: _open(args))
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
    from casstore.treediff import diff_trees

    result = diff_trees(store, a, b)
    if args.json:
        _print_json({"a": a, "b": b, **_tree_diff_json(result)})
        return EXIT_OK
    _print_tree_diff(result, indent="")
    return EXIT_OK


def _tree_diff_json(result: Any) -> dict[str, object]:
    return {"changes": [c.as_json() for c in result.changes], **result.summary()}


def _print_tree_diff(result: Any, indent: str, limit: int | None = None) -> None:
    from casstore.progress import human_bytes

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
    from casstore.manifest import RunManifest
    from casstore.manifestdiff import ABSENT, diff_manifests
    from casstore.runs import read_record

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
        _print_json(
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
            _print_tree_diff(result.snapshots[role], indent="  ", limit=20)
        if role in result.unavailable:
            print(f"  (contents not compared: {result.unavailable[role]})")
    return EXIT_OK


def _short_json(value: object, width: int = 60) -> str:
    from casstore.digest import HEX_LENGTH, PREFIX

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

    from casstore.manifest import RunManifest
    from casstore.runs import read_record

    digest, record = read_record(args.manifest, lambda: _open(args))
    if args.json:
        _print_json({"digest": digest, **msgspec.to_builtins(record)})
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
    from casstore.manifest import REF_FIELDS

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
    from casstore.progress import human_bytes

    if ref is None:
        print(f"  {name:20} (absent)")
    else:
        print(f"  {name:20} {ref.digest}  {human_bytes(ref.size)}")


def _entry_size(entry: Any, human: Callable[[float], str]) -> str:
    if entry.type == "file":
        return human(entry.size) + (", executable" if entry.executable else "")
    return f"symlink -> {entry.target}" if entry.type == "symlink" else "empty folder"


def _write_verified_to_stdout(store: Store, digest: str) -> None:
    """Write an object to stdout; no byte goes out before the whole object verified."""
    out = sys.stdout.buffer
    size = store.stat(digest).size
    if size <= SPOOL_LIMIT:
        out.write(store.get_bytes(digest))
    else:
        # Too big for memory: verify in a first pass, then stream (verified again).
        with _progress("verify", size) as bar:
            store.verify(digest, progress=bar)
        with _progress("get", size) as bar:
            store.copy_to(digest, out, progress=bar)
    out.flush()


def cmd_get(args: argparse.Namespace) -> int:
    store = _open(args)
    digest = store.resolve(args.digest)
    if _is_tree(store, digest) and args.output not in (None, "-"):
        fmt = store.get_tree(digest, args.output, format=args.format, force=args.force)
        print(f"{digest}  {args.output} ({fmt})")
        return EXIT_OK
    if args.format:
        raise UsageError("--format applies to trees only")
    if args.output in (None, "-"):
        _write_verified_to_stdout(store, digest)
        return EXIT_OK
    if os.path.isdir(args.output):
        raise UsageError(f"{args.output} is a directory; give a file path")
    total = store.stat(digest).size
    with _progress(f"get {os.path.basename(args.output)}", total) as bar:
        store.get_file(digest, args.output, progress=bar)
    return EXIT_OK


def _is_tree(store: Store, digest: str) -> bool:
    from casstore.tree import is_tree

    with store.open(digest) as reader:
        return is_tree(reader.read(32))


def cmd_cat(args: argparse.Namespace) -> int:
    store = _open(args)
    for spec in args.digests:
        _write_verified_to_stdout(store, store.resolve(spec))
    return EXIT_OK


def cmd_has(args: argparse.Namespace) -> int:
    store = _open(args)
    missing = []
    for spec in args.digests:
        try:
            present = store.has(store.resolve(spec))
        except ObjectNotFound:
            present = False
        if not present:
            missing.append(spec)
    if args.json:
        _print_json({"present": len(args.digests) - len(missing), "missing": missing})
    else:
        for spec in missing:
            print(spec)
    return EXIT_NOT_FOUND if missing else EXIT_OK


def cmd_stat(args: argparse.Namespace) -> int:
    store = _open(args)
    info = store.stat(store.resolve(args.digest))
    if args.json:
        _print_json(_info_json(info))
    else:
        from casstore.progress import human_bytes

        ratio = info.stored_size / info.size if info.size else 1.0
        print(f"digest:       {info.digest}")
        print(f"size:         {info.size} ({human_bytes(info.size)})")
        print(f"stored size:  {info.stored_size} ({ratio:.1%} of size)")
        print(f"encoding:     {info.encoding}")
    return EXIT_OK


def cmd_ls(args: argparse.Namespace) -> int:
    store = _open(args)
    for digest in sorted(store.iter_digests()):
        if args.json:
            _print_json({"digest": digest})
        else:
            print(digest)
    return EXIT_OK


def cmd_tag(args: argparse.Namespace) -> int:
    store = _open(args)
    if args.delete:
        if args.digest is not None:
            raise UsageError("cas tag -d takes a tag name only")
        store.untag(args.name)
        print(f"deleted tag {args.name}")
        return EXIT_OK
    if args.digest is None:
        raise UsageError("cas tag needs NAME DIGEST (or -d NAME)")
    digest = store.resolve(args.digest)
    store.tag(args.name, digest)
    print(f"{digest}  {args.name}")
    return EXIT_OK


def cmd_tags(args: argparse.Namespace) -> int:
    store = _open(args)
    tags = store.tags()
    if args.json:
        _print_json(tags)
    else:
        for name, digest in tags.items():
            print(f"{digest}  {name}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    if args.snapshot or args.trajectory or args.artifact:
        return _verify_local(args)
    from casstore.digest import hash_file
    from casstore.verification import CORRUPT, MISSING

    store = _open(args)
    worst = EXIT_OK
    for spec in args.digests:
        # A sidecar names its run by the digest of its bytes.
        digest = hash_file(spec)[0] if os.path.isfile(spec) else store.resolve(spec)
        try:
            report = _verify_one(args, store, digest)
        except ObjectNotFound:
            worst = max(worst, EXIT_NOT_FOUND)
            if args.json:
                _print_json({"digest": digest, "status": MISSING, "roles": []})
            else:
                print(f"missing  {digest}")
            continue
        if report.status == CORRUPT:
            worst = EXIT_INTEGRITY
        elif report.status == MISSING:
            worst = max(worst, EXIT_NOT_FOUND)
        if args.json:
            _print_json(report.as_json())
        elif report.kind is None and len(report.roles) == 1 and report.roles[0].role == "object":
            role = report.roles[0]
            detail = "  " + next(iter(role.corrupt.values())) if role.corrupt else ""
            print(f"{role.status:8} {digest}{detail}")
        else:
            _print_verify_report(report)
    return worst


def _verify_one(args: argparse.Namespace, store: Store, digest: str) -> Any:
    from casstore.verification import verify_closure

    with _progress("verify", None, unit="objects") as bar:

        def plan(count: int) -> None:
            bar.total = count

        return verify_closure(store, digest, jobs=args.jobs, on_plan=plan, on_object=lambda: bar(1))


def _print_verify_report(report: Any) -> None:
    from casstore.progress import human_bytes

    kind = (report.kind or "object").split("/")[0].replace("-", " ")
    print(f"{report.root} ({kind}): {report.status}")
    width = max(len(r.role) for r in report.roles)
    for role in report.roles:
        if role.corrupt:
            for digest, problem in role.corrupt.items():
                what = problem if problem.startswith(digest) else f"{digest}: {problem}"
                print(f"  {role.role + ':':{width + 1}} corrupt: {what}")
        if role.missing:
            count = len(role.missing)
            noun = "object" if count == 1 else "objects"
            print(f"  {role.role + ':':{width + 1}} {count} {noun} missing")
            for digest in role.missing[:5]:
                print(f"  {'':{width + 1}}   {digest}")
            if count > 5:
                print(f"  {'':{width + 1}}   ... and {count - 5} more (--json lists all)")
        if not role.corrupt and not role.missing:
            noun = "object" if role.objects == 1 else "objects"
            print(
                f"  {role.role + ':':{width + 1}} ok, {role.objects} {noun}, "
                f"{human_bytes(role.size)}"
            )


def _verify_local(args: argparse.Namespace) -> int:
    from casstore.manifest import GradingRecord, RunManifest
    from casstore.runs import read_record
    from casstore.verification import check_file, check_snapshot

    if len(args.digests) != 1:
        raise UsageError("--snapshot, --trajectory and --artifact check one run: give one DIGEST")
    store = _try_open(args)
    digest, record = read_record(args.digests[0], store)
    if isinstance(record, GradingRecord):
        raise UsageError(f"{digest} is a grading record: give the run's manifest")
    assert isinstance(record, RunManifest)
    checks = []
    for spec in args.snapshot:
        role, path = _role_path(spec, "--snapshot", "final=PATH")
        checks.append(check_snapshot(store, record, role, path))
    if args.trajectory:
        checks.append(check_file(record, "trajectory", args.trajectory))
    for spec in args.artifact:
        name, path = _role_path(spec, "--artifact", "NAME=PATH")
        checks.append(check_file(record, f"artifact:{name}", path))
    if args.json:
        _print_json({"digest": digest, "checks": [c.as_json() for c in checks]})
    else:
        print(f"run {digest}")
        for check in checks:
            print(f"  {'ok' if check.ok else 'MISMATCH':8} {check.role}  {check.path}")
            if not check.ok:
                print(f"           recorded {check.expected or '(nothing)'}")
                print(f"           local    {check.actual}")
            if check.diff is not None:
                _print_tree_diff(check.diff, indent="           ", limit=20)
            if check.note:
                print(f"           ({check.note})")
    return EXIT_OK if all(c.ok for c in checks) else EXIT_INTEGRITY


def _role_path(spec: str, option: str, example: str) -> tuple[str, str]:
    role, sep, path = spec.partition("=")
    if not sep or not role or not path:
        raise UsageError(f"{option} takes {example}, not {spec!r}")
    return role, path


def _try_open(args: argparse.Namespace) -> Store | None:
    """The store when one is configured and opens; None (a sidecar may do) otherwise."""
    try:
        return _open(args)
    except CasError:
        return None


def cmd_replay(args: argparse.Namespace) -> int:
    import shlex

    from casstore.manifest import RunManifest
    from casstore.replay import PLAN_FILE, replay
    from casstore.runs import read_record

    store = _open(args)
    digest, record = read_record(args.digest, store)
    if not isinstance(record, RunManifest):
        raise UsageError(f"{digest} is a grading record: replay its run ({record.run.digest})")
    plan = replay(store, digest, record, args.into, force=args.force)
    for warning in plan.warnings:
        print(f"cas: warning: {warning}", file=sys.stderr)
    if args.json:
        _print_json(plan.as_json())
        return EXIT_OK
    print(f"run {digest}: every input fetched and verified into {plan.folder}")
    for role, path in plan.files.items():
        print(f"  {role:22} {path}")
    if plan.variables:
        print("values redacted when the run was recorded; supply them before running:")
        for variable in plan.variables:
            print(f"  {variable}")
    print(f"wrote {plan.folder / PLAN_FILE}")
    print("run it again with:")
    print(f"  {shlex.join(plan.command)}")
    return EXIT_OK


def cmd_bundle(args: argparse.Namespace) -> int:
    from casstore.bundle import write_bundle
    from casstore.materialize import DestinationError
    from casstore.progress import human_bytes

    store = _open(args)
    roots = [store.resolve(spec) for spec in args.digests]
    target = os.path.abspath(args.output)
    if os.path.exists(target) and not args.force:
        raise DestinationError(f"{args.output} exists: pass --force to replace it")
    tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as out, _progress("bundle", None) as bar:
            result = write_bundle(store, roots, out, on_object=bar)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    size = os.path.getsize(target)
    if args.json:
        _print_json(
            {
                "bundle": args.output,
                "roots": roots,
                "objects": result.objects,
                "bytes": result.size,
                "file_bytes": size,
            }
        )
        return EXIT_OK
    print(
        f"wrote {args.output}: {result.objects} objects, {human_bytes(result.size)} "
        f"({human_bytes(size)} compressed)"
    )
    for root in roots:
        print(f"{root}  {_kind_label(result.kinds.get(root))}")
    return EXIT_OK


def _kind_label(kind: str | None) -> str:
    return (kind or "object").split("/")[0].replace("-", " ")


def cmd_unbundle(args: argparse.Namespace) -> int:
    from casstore.bundle import read_bundle
    from casstore.progress import human_bytes
    from casstore.verification import kind_of_stored

    store = _open(args)
    with _progress("unbundle", None) as bar:
        result = read_bundle(store, args.bundle, on_object=bar)
    kinds = {root: kind_of_stored(store, root) for root in result.roots}
    if args.json:
        _print_json(
            {
                "roots": [{"digest": r, "kind": kinds[r]} for r in result.roots],
                "objects": result.objects,
                "imported": result.imported,
                "imported_bytes": result.imported_bytes,
            }
        )
        return EXIT_OK
    print(
        f"verified {result.objects} objects; imported {result.imported} "
        f"({human_bytes(result.imported_bytes)}), "
        f"{result.objects - result.imported} already present"
    )
    for root in result.roots:
        print(f"{root}  {_kind_label(kinds[root])}")
    return EXIT_OK


def cmd_gc(args: argparse.Namespace) -> int:
    from casstore.gc import collect
    from casstore.progress import human_bytes

    grace = _duration(args.grace)
    result = collect(
        _open(args),
        grace=grace,
        dry_run=args.dry_run,
        log=lambda message: print(f"cas: warning: {message}", file=sys.stderr),
    )
    if args.json:
        _print_json(result.as_json())
        return EXIT_OK
    would = "would be " if args.dry_run else ""
    print(f"{result.roots} roots; {result.reachable} objects reachable")
    print(
        f"{would}moved to the trash: {result.trashed} objects "
        f"({human_bytes(result.trashed_bytes)}), unreachable and older than {args.grace}"
    )
    print(
        f"{would}deleted from the trash: {result.deleted} objects, "
        f"{human_bytes(result.deleted_bytes)} freed"
    )
    print(f"{would}restored from the trash (reachable again): {result.restored}")
    print(f"{would}rewritten packs: {result.packs_rewritten}")
    print(f"kept, unreachable but younger than {args.grace}: {result.young}")
    return EXIT_OK


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    value = text.strip().lower()
    unit = units.get(value[-1:])
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise UsageError(f"not a duration: {text!r} (e.g. 24h, 30m, 7d, 0)") from None
    if seconds < 0 or seconds != seconds:
        raise UsageError(f"not a duration: {text!r} (e.g. 24h, 30m, 7d, 0)")
    return seconds


def cmd_fsck(args: argparse.Namespace) -> int:
    from casstore.fsck import fsck
    from casstore.progress import human_bytes

    if not 0 < args.sample <= 100:
        raise UsageError("--sample is a percentage above 0, at most 100")
    store = _open(args)
    with _progress("fsck", None, unit="objects") as bar:

        def plan(count: int) -> None:
            bar.total = count

        result = fsck(
            store,
            sample_percent=args.sample,
            jobs=args.jobs,
            quarantine=not store.read_only,
            on_plan=plan,
            on_object=lambda: bar(1),
        )
    code = EXIT_INTEGRITY if result.corrupt else EXIT_NOT_FOUND if result.dangling else EXIT_OK
    if args.json:
        _print_json(result.as_json())
        return code
    print(
        f"checked {result.checked} of {result.total} objects ({human_bytes(result.checked_bytes)})"
    )
    for digest, problem in result.corrupt.items():
        print(f"corrupt   {problem if problem.startswith(digest) else f'{digest}: {problem}'}")
    for key in result.quarantined:
        print(f"moved to  {key}")
    for record, missing in result.dangling.items():
        print(f"dangling  {record} references {len(missing)} missing: {', '.join(missing[:3])}")
    if code == EXIT_OK:
        print("no problems found")
    return code


def _other_store(args: argparse.Namespace, spec: str) -> Store:
    """A store named by a ``[remotes.NAME]`` of store.toml, or by its URL."""
    from casstore.config import load_config
    from casstore.store import open_store

    config = load_config()
    if spec in config.file.remotes:
        return open_store(config.remote_url(spec), config=config, cache=not args.no_cache)
    if "://" not in spec and "/" not in spec and not os.path.exists(spec):
        config.remote_url(spec)  # raises: names the remotes that do exist
    return open_store(spec, config=config, cache=not args.no_cache)


def _transfer(args: argparse.Namespace, src: Store, dst: Store, verb: str) -> int:
    from casstore.progress import human_bytes
    from casstore.transfer import transfer

    roots = [src.resolve(spec) for spec in args.digests]
    with _progress(verb, None, unit="objects") as bar:

        def plan(count: int) -> None:
            bar.total = count

        result = transfer(
            src, dst, roots, concurrency=args.jobs, on_object=lambda _size: bar(1), on_plan=plan
        )
    if args.json:
        _print_json(
            {
                "roots": roots,
                "from": src.url,
                "to": dst.url,
                "copied": result.copied,
                "bytes": result.copied_bytes,
                "present": result.present,
            }
        )
    elif result.copied == 0:
        print(f"{verb}ed nothing: all {result.present} objects already present")
    else:
        print(
            f"{verb}ed {result.copied} objects ({human_bytes(result.copied_bytes)}), "
            f"{result.present} already present"
        )
    return EXIT_OK


def cmd_push(args: argparse.Namespace) -> int:
    return _transfer(args, _open(args), _other_store(args, args.to), "push")


def cmd_pull(args: argparse.Namespace) -> int:
    return _transfer(args, _other_store(args, args.source), _open(args), "pull")


# -- parser -------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"cas: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cas",
        description="casstore: store artifacts by the BLAKE3 digest of their content.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cas {__version__}")
    parser.add_argument("--store", metavar="URL", help="store URL or folder (overrides $CAS_STORE)")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    parser.add_argument(
        "--no-cache", action="store_true", help="read remote stores directly, not via the cache"
    )
    parser.add_argument(
        "--read-only", action="store_true", help="refuse every write to the store (exit 1)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        p.set_defaults(func=func)
        return p

    p = add("init", cmd_init, "create a store (the configured one, or URL)")
    p.add_argument("url", nargs="?", metavar="URL", help="where to create it")

    p = add("put", cmd_put, "store files (or - for stdin) and print their digests")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files to store; - reads stdin")
    p.add_argument("--json", action="store_true", help="one JSON object per input")
    p.add_argument(
        "--tree",
        action="store_true",
        help="store a snapshot as a tree: PATH is a folder, .zip, .tar, .tar.gz or .tar.zst "
        "(detected from content), or - for a tar stream on stdin",
    )

    p = add("tree", cmd_tree, "print the tree digest of a snapshot, storing nothing")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="folder, zip, tar[.gz|.zst], -")
    p.add_argument("--json", action="store_true", help="one JSON object per source")

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

    p = add("get", cmd_get, "write an object's verified content to a file or stdout")
    p.add_argument("digest", metavar="DIGEST")
    p.add_argument("-o", "--output", metavar="PATH", help="file to write (default stdout)")
    p.add_argument(
        "--format",
        choices=["dir", "zip", "tar", "tar.gz", "tar.zst"],
        help="for a tree: what to write (default: from PATH's suffix, else a folder)",
    )
    p.add_argument("--force", action="store_true", help="for a tree: write into a non-empty folder")

    p = add("cat", cmd_cat, "write objects' verified content to stdout")
    p.add_argument("digests", nargs="+", metavar="DIGEST")

    p = add("has", cmd_has, "exit 0 if every object is present; print the missing ones")
    p.add_argument("digests", nargs="+", metavar="DIGEST")
    p.add_argument("--json", action="store_true", help="print a JSON summary")

    p = add("stat", cmd_stat, "show an object's size, stored size and encoding")
    p.add_argument("digest", metavar="DIGEST")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("ls", cmd_ls, "list every object's digest")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = add("tag", cmd_tag, "name an object (a ref under refs/tags/)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("digest", nargs="?", metavar="DIGEST")
    p.add_argument("-d", "--delete", action="store_true", help="delete the tag NAME")

    p = add("tags", cmd_tags, "list tags and the digests they name")
    p.add_argument("--json", action="store_true", help="print a JSON object of name: digest")

    p = add(
        "verify",
        cmd_verify,
        "re-hash objects and everything they reference, reported by role for runs "
        "(exit 3 if missing, 4 if corrupt)",
    )
    p.add_argument("digests", nargs="+", metavar="DIGEST", help="digest, tag, or a sidecar")
    p.add_argument("--json", action="store_true", help="one JSON object per digest")
    p.add_argument("-j", "--jobs", type=int, default=16, help="objects verified at once (16)")
    p.add_argument(
        "--snapshot",
        action="append",
        default=[],
        metavar="ROLE=PATH",
        help="check a local snapshot (folder or archive) against the run's ROLE snapshot "
        "instead of verifying the store; repeatable (initial=..., final=...)",
    )
    p.add_argument("--trajectory", metavar="PATH", help="check a local trajectory file")
    p.add_argument(
        "--artifact", action="append", default=[], metavar="NAME=PATH", help="check an artifact"
    )
    p = add(
        "replay",
        cmd_replay,
        "fetch and verify every input of a run into a folder, and print the command that "
        "re-runs it",
    )
    p.add_argument("digest", metavar="DIGEST", help="the run's manifest: digest, tag or sidecar")
    p.add_argument("--into", required=True, metavar="DIR", help="folder to write (new or empty)")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")

    p = add("bundle", cmd_bundle, "write objects and all they reference into one file")
    p.add_argument("digests", nargs="+", metavar="DIGEST")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the bundle (.casb)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.add_argument("--json", action="store_true", help="print a JSON summary")

    p = add(
        "unbundle",
        cmd_unbundle,
        "import a bundle into the store, verifying every object; prints its roots",
    )
    p.add_argument("bundle", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print a JSON summary")

    p = add(
        "gc",
        cmd_gc,
        "move objects unreachable from any tag to the trash, and empty the trash of those "
        "unreachable for longer than the grace period",
    )
    p.add_argument(
        "--grace",
        default="24h",
        metavar="DURATION",
        help="how old an unreachable object must be (and how long it stays in the trash) "
        "before it goes: 90s, 30m, 24h (default), 7d. Longer than any writer takes "
        "between storing objects and tagging them",
    )
    p.add_argument("--dry-run", action="store_true", help="report, change nothing")
    p.add_argument("--json", action="store_true", help="print a JSON summary")

    p = add(
        "fsck",
        cmd_fsck,
        "re-hash every object (or a sample): corrupt ones are moved to quarantine/ "
        "(exit 4); dangling references are reported (exit 3)",
    )
    p.add_argument(
        "--sample", type=float, default=100.0, metavar="PERCENT", help="check a random sample"
    )
    p.add_argument("-j", "--jobs", type=int, default=8, help="objects checked at once (8)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")

    p = add("push", cmd_push, "copy objects and all they reference to another store")
    p.add_argument("digests", nargs="+", metavar="DIGEST")
    p.add_argument("--to", required=True, metavar="REMOTE", help="a [remotes.NAME] or a URL")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("-j", "--jobs", type=int, default=16, help="objects copied at once (16)")

    p = add("pull", cmd_pull, "copy objects and all they reference from another store")
    p.add_argument("digests", nargs="+", metavar="DIGEST")
    p.add_argument(
        "--from", dest="source", required=True, metavar="REMOTE", help="a [remotes.NAME] or a URL"
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("-j", "--jobs", type=int, default=16, help="objects copied at once (16)")
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Run ``cas`` with ``argv``; returns the exit code instead of exiting."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("cas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (cas cat ... | head): not an error worth a message.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except (CasError, OSError) as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        message = str(exc) if isinstance(exc, CasError) else _os_message(exc)
        print(f"cas: {message}", file=sys.stderr)
        return _exit_code(exc)


def _os_message(exc: OSError) -> str:
    if exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    sys.exit(run(argv))
