"""Commands that hand runs to others: replay, bundle, unbundle, push, pull."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from casstore.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    Adder,
    open_from_args,
    plan_setter,
    positive_int,
    print_json,
    progress,
)
from casstore.errors import UsageError

if TYPE_CHECKING:
    from casstore.store.objects import Store


def cmd_replay(args: argparse.Namespace) -> int:
    from casstore.format.manifest import GradingRecord, RunManifest
    from casstore.runs.records import read_record
    from casstore.runs.replay import PLAN_FILE, replay

    store = open_from_args(args)
    digest, record = read_record(args.digest, store)
    if isinstance(record, GradingRecord):
        raise UsageError(f"{digest} is a grading record: replay its run ({record.run.digest})")
    if not isinstance(record, RunManifest):
        raise UsageError(f"{digest} is a suite: replay one of its runs")
    plan = replay(store, digest, record, args.into, force=args.force)
    for warning in plan.warnings:
        print(f"cas: warning: {warning}", file=sys.stderr)
    if args.json:
        print_json(plan.as_json())
        return EXIT_OK
    print(f"run {digest}: every input fetched and verified into {plan.folder}")
    width = max(map(len, plan.files), default=0)
    for role, path in plan.files.items():
        print(f"  {role:{width}}  {path}")
    if plan.variables:
        print("values to supply before running (redacted, or of the recording machine):")
        for variable in plan.variables:
            print(f"  {variable}")
    print(f"wrote {plan.folder / PLAN_FILE}")
    print("run it again with:")
    print(f"  {plan.command_line}")
    return EXIT_OK


def cmd_bundle(args: argparse.Namespace) -> int:
    from casstore.config import counted, human_bytes
    from casstore.format.digest import hash_file
    from casstore.graph.bundle import write_bundle_file

    store = open_from_args(args)
    # A sidecar names its run by its bytes' digest, as for cas verify and cas replay.
    roots = [hash_file(s)[0] if os.path.isfile(s) else store.resolve(s) for s in args.digests]
    target = os.path.abspath(args.output)
    with progress("bundle", None) as bar:
        result = write_bundle_file(store, roots, target, force=args.force, on_object=bar)
    size = os.path.getsize(target)
    if args.json:
        print_json(
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
        f"wrote {args.output}: {counted(result.objects, 'objects')}, {human_bytes(result.size)} "
        f"({human_bytes(size)} compressed)"
    )
    for root in roots:
        print(f"{root}  {_kind_label(result.kinds.get(root))}")
    return EXIT_OK


def _kind_label(kind: str | None) -> str:
    return (kind or "object").split("/")[0].replace("-", " ")


def cmd_unbundle(args: argparse.Namespace) -> int:
    from casstore.config import counted, human_bytes
    from casstore.graph.bundle import read_bundle
    from casstore.graph.closure import kind_of_stored
    from casstore.runs.catalog import keep_records

    store = open_from_args(args)
    with progress("unbundle", None) as bar:
        result = read_bundle(store, args.bundle, on_object=bar)
    kinds = {root: kind_of_stored(store, root) for root in result.roots}
    # Imported runs, gradings and suites stay roots, as when they were recorded.
    refs = keep_records(store, result.roots)
    if args.json:
        print_json(
            {
                "roots": [
                    {"digest": r, "kind": kinds[r], "ref": refs.get(r)} for r in result.roots
                ],
                "objects": result.objects,
                "imported": result.imported,
                "imported_bytes": result.imported_bytes,
            }
        )
        return EXIT_OK
    print(
        f"verified {counted(result.objects, 'objects')}; imported {result.imported} "
        f"({human_bytes(result.imported_bytes)}), "
        f"{result.objects - result.imported} already present"
    )
    for root in result.roots:
        print(f"{root}  {_kind_label(kinds[root])}  {refs.get(root, '')}".rstrip())
    unkept = [root for root in result.roots if root not in refs]
    if unkept:
        print(
            f"not kept by any ref: {len(unkept)} of the roots above; tag them "
            "(cas tag NAME DIGEST) or gc removes them after its grace period"
        )
    return EXIT_OK


def _other_store(args: argparse.Namespace, spec: str) -> Store:
    """A store named by a ``[remotes.NAME]`` of store.toml, or by its URL."""
    from casstore.config import load_config
    from casstore.store.open import open_store

    config = load_config()
    if spec in config.file.remotes:
        return open_store(config.remote_url(spec), config=config, cache=not args.no_cache)
    if "://" not in spec and "/" not in spec and not os.path.exists(spec):
        config.remote_url(spec)  # raises: names the remotes that do exist
    return open_store(spec, config=config, cache=not args.no_cache)


def _transfer(args: argparse.Namespace, src: Store, dst: Store, verb: str) -> int:
    from casstore.config import counted, human_bytes
    from casstore.graph.transfer import transfer
    from casstore.store.refs import resolve_ref

    if not args.digests and not args.refs:
        raise UsageError(f"cas {verb} needs DIGEST or REF arguments, or --refs PATTERN")
    roots, refs = [], {}
    for spec in args.digests:
        digest, ref = resolve_ref(src, spec)
        roots.append(digest)
        if ref is not None:
            refs[ref] = digest  # a ref named travels with its closure
    for pattern in args.refs:
        found = src.refs(pattern)
        if not found:
            raise UsageError(f"no ref matches {pattern!r} in {src.url}")
        refs.update(found)
    with progress(verb, None, unit="objects") as bar:
        result = transfer(
            src,
            dst,
            roots,
            concurrency=args.jobs,
            on_object=lambda _size: bar(1),
            on_plan=plan_setter(bar),
            refs=refs,
            force_refs=args.force,
        )
    code = EXIT_ERROR if result.conflicts else EXIT_OK
    if args.json:
        print_json(
            {
                "roots": result.roots,
                "from": src.url,
                "to": dst.url,
                "copied": result.copied,
                "bytes": result.copied_bytes,
                "present": result.present,
                "refs": result.refs,
                "conflicts": result.conflicts,
            }
        )
        return code
    if result.copied == 0:
        print(f"{verb}ed nothing new: all {result.present} objects already present")
    else:
        print(
            f"{verb}ed {counted(result.copied, 'objects')} ({human_bytes(result.copied_bytes)}), "
            f"{result.present} already present"
        )
    for ref, digest in result.refs.items():
        print(f"{digest}  {ref}")
    for ref, other in result.conflicts.items():
        print(
            f"cas: {ref} names {other} at the destination: left alone "
            f"(--force moves it to {refs[ref]})",
            file=sys.stderr,
        )
    return code


def cmd_push(args: argparse.Namespace) -> int:
    if args.spool:
        return _push_spool(args)
    if not args.to:
        raise UsageError("cas push needs --to REMOTE (or --spool)")
    return _transfer(args, open_from_args(args), _other_store(args, args.to), "push")


def _push_spool(args: argparse.Namespace) -> int:
    """Runs recorded while their store was unreachable, sent to it now."""
    from casstore.config import counted, human_bytes
    from casstore.graph.transfer import TransferResult
    from casstore.runs.spool import Pending, configured_spool, push_spooled
    from casstore.store.open import open_store

    if args.digests or args.refs:
        raise UsageError("cas push --spool sends every spooled run: give no DIGEST or --refs")
    path = configured_spool() if args.spool is True else Path(args.spool)
    if not (path / "casstore.json").exists():
        print(f"nothing spooled: {path} holds no spool")
        return EXIT_OK
    spool = open_store(str(path), cache=False)
    pushed: list[dict[str, object]] = []

    def on_run(entry: Pending, to: str, result: TransferResult, ref: str | None) -> None:
        pushed.append({"run": entry.run, "to": to, "ref": ref, "copied": result.copied})
        if not args.json:
            print(
                f"{entry.run}  {ref or '(no ref)'} -> {to}: {counted(result.copied, 'objects')} "
                f"({human_bytes(result.copied_bytes)}) sent, {result.present} already there"
            )

    with progress("push", None, unit="objects") as bar:
        count = push_spooled(
            spool,
            lambda url: _other_store(args, url),
            to=args.to,
            on_run=on_run,
            on_object=lambda _size: bar(1),
        )
    if args.json:
        print_json({"spool": str(path), "pushed": pushed})
    elif count == 0:
        print(f"nothing spooled: no run waits in {path}")
    return EXIT_OK


def cmd_pull(args: argparse.Namespace) -> int:
    return _transfer(args, _other_store(args, args.source), open_from_args(args), "pull")


# -- parser -------------------------------------------------------------------


def register(add: Adder) -> None:
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
        "push",
        cmd_push,
        "copy objects and all they reference to another store; refs named go along",
    )
    p.add_argument("digests", nargs="*", metavar="DIGEST|REF")
    p.add_argument(
        "--refs", action="append", default=[], metavar="PATTERN", help="push refs: runs/*"
    )
    p.add_argument("--force", action="store_true", help="move refs that name other objects there")
    p.add_argument("--to", metavar="REMOTE", help="a [remotes.NAME] or a URL")
    p.add_argument(
        "--spool",
        nargs="?",
        const=True,
        default=None,
        metavar="DIR",
        help="send the runs recorded while their store was unreachable (from [record] spool, "
        "or DIR) to that store, or to --to",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument(
        "-j", "--jobs", type=positive_int, default=16, help="objects copied at once (16)"
    )

    p = add(
        "pull",
        cmd_pull,
        "copy objects and all they reference from another store; refs named come along",
    )
    p.add_argument("digests", nargs="*", metavar="DIGEST|REF")
    p.add_argument(
        "--refs", action="append", default=[], metavar="PATTERN", help="pull refs: runs/*"
    )
    p.add_argument("--force", action="store_true", help="move refs that name other objects here")
    p.add_argument(
        "--from", dest="source", required=True, metavar="REMOTE", help="a [remotes.NAME] or a URL"
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument(
        "-j", "--jobs", type=positive_int, default=16, help="objects copied at once (16)"
    )
