"""``cas verify``: a closure re-hashed by role, or local files checked against a run."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from casstore.cli.common import (
    EXIT_INTEGRITY,
    EXIT_NOT_FOUND,
    EXIT_OK,
    Adder,
    open_from_args,
    plan_setter,
    positive_int,
    print_json,
    progress,
)
from casstore.cli.records import print_tree_diff
from casstore.errors import CasError, ObjectNotFound, UsageError

if TYPE_CHECKING:
    from casstore.store.objects import Store


def cmd_verify(args: argparse.Namespace) -> int:
    if args.snapshot or args.trajectory or args.artifact:
        return _verify_local(args)
    from casstore.format.digest import hash_file
    from casstore.graph.verify import CORRUPT, MISSING

    store = open_from_args(args)
    worst = EXIT_OK
    for spec in args.digests:
        # A sidecar names its run by the digest of its bytes.
        digest = hash_file(spec)[0] if os.path.isfile(spec) else store.resolve(spec)
        try:
            report = _verify_one(args, store, digest)
        except ObjectNotFound:
            worst = max(worst, EXIT_NOT_FOUND)
            if args.json:
                print_json({"digest": digest, "status": MISSING, "roles": []})
            else:
                print(f"missing  {digest}")
            continue
        if report.status == CORRUPT:
            worst = EXIT_INTEGRITY
        elif report.status == MISSING:
            worst = max(worst, EXIT_NOT_FOUND)
        if args.json:
            print_json(report.as_json())
        elif report.kind is None and len(report.roles) == 1 and report.roles[0].role == "object":
            role = report.roles[0]
            detail = "  " + next(iter(role.corrupt.values())) if role.corrupt else ""
            print(f"{role.status:8} {digest}{detail}")
        else:
            _print_verify_report(report)
    return worst


def _verify_one(args: argparse.Namespace, store: Store, digest: str) -> Any:
    from casstore.format.records import SUITE_KIND
    from casstore.graph.verify import RoleReport, verify_closure

    with progress("verify", None, unit="objects") as bar:
        report = verify_closure(
            store, digest, jobs=args.jobs, on_plan=plan_setter(bar), on_object=lambda: bar(1)
        )
    if report.kind == SUITE_KIND and report.roles[0].status == "ok":
        from casstore.format.manifest import SuiteRecord, decode_as
        from casstore.runs.suites import suite_problems

        # Every byte may hash right and the numbers still not follow from the gradings.
        suite = decode_as(SuiteRecord, store.get_record(digest), digest)
        count = len(suite.entries)
        summary = f"recomputed from {count} gradings"  # numbers, not bytes read
        check = RoleReport("aggregates", digest, objects=count, summary=summary)
        check.corrupt = {problem: problem for problem in suite_problems(store, suite)}
        report.roles.append(check)
    return report


def _print_verify_report(report: Any) -> None:
    from casstore.config import human_bytes

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
            what = role.summary or f"{role.objects} {noun}, {human_bytes(role.size)}"
            print(f"  {role.role + ':':{width + 1}} ok, {what}")


def _verify_local(args: argparse.Namespace) -> int:
    from casstore.format.manifest import GradingRecord, RunManifest
    from casstore.graph.verify import check_file, check_snapshot
    from casstore.runs.records import read_record

    if len(args.digests) != 1:
        raise UsageError("--snapshot, --trajectory and --artifact check one run: give one DIGEST")
    store = _try_open(args)
    digest, record = read_record(args.digests[0], store)
    if not isinstance(record, RunManifest):
        what = "grading record" if isinstance(record, GradingRecord) else "suite"
        raise UsageError(f"{digest} is a {what}: give the run's manifest")
    checks = []
    for spec in args.snapshot:
        role, path = _role_path(spec, "--snapshot", "final=PATH")
        if record.snapshot(role) is None:
            roles = ["initial", "final", *record.snapshots]
            have = [r for r in roles if record.snapshot(r) is not None]
            raise UsageError(
                f"the run has no {role!r} snapshot; its snapshots: {', '.join(have) or 'none'}"
            )
        checks.append(check_snapshot(store, record, role, path))
    if args.trajectory:
        checks.append(check_file(record, "trajectory", args.trajectory))
    for spec in args.artifact:
        name, path = _role_path(spec, "--artifact", "NAME=PATH")
        if name not in record.artifacts:
            names = ", ".join(sorted(record.artifacts)) or "none"
            raise UsageError(f"the run has no artifact {name!r}; its artifacts: {names}")
        checks.append(check_file(record, f"artifact:{name}", path))
    if args.json:
        print_json({"digest": digest, "checks": [c.as_json() for c in checks]})
    else:
        print(f"run {digest}")
        for check in checks:
            print(f"  {'ok' if check.ok else 'MISMATCH':8} {check.role}  {check.path}")
            if not check.ok:
                print(f"           recorded {check.expected or '(nothing)'}")
                print(f"           local    {check.actual}")
            if check.diff is not None:
                print_tree_diff(check.diff, indent="           ", limit=20)
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
        return open_from_args(args)
    except CasError:
        return None


def register(add: Adder) -> None:
    p = add(
        "verify",
        cmd_verify,
        "re-hash objects and everything they reference, reported by role for runs "
        "(exit 3 if missing, 4 if corrupt)",
    )
    p.add_argument("digests", nargs="+", metavar="DIGEST", help="digest, tag, or a sidecar")
    p.add_argument("--json", action="store_true", help="one JSON object per digest")
    p.add_argument(
        "-j", "--jobs", type=positive_int, default=16, help="objects verified at once (16)"
    )
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
