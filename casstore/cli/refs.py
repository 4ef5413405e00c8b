"""Commands on names: tag, tags, refs, runs."""

from __future__ import annotations

import argparse

from casstore.cli.common import EXIT_OK, Adder, open_from_args, print_json
from casstore.errors import UsageError


def cmd_tag(args: argparse.Namespace) -> int:
    store = open_from_args(args)
    if args.delete:
        if args.digest is not None:
            raise UsageError("cas tag -d takes a tag name only")
        store.untag(args.name)
        print(f"deleted tag {args.name}")
        return EXIT_OK
    if args.digest is None:
        raise UsageError("cas tag needs NAME DIGEST (or -d NAME)")
    digest = store.resolve(args.digest)
    store.tag(args.name, digest, force=args.force)
    print(f"{digest}  {args.name}")
    return EXIT_OK


def cmd_tags(args: argparse.Namespace) -> int:
    store = open_from_args(args)
    tags = store.tags(args.pattern)
    if args.json:
        print_json(tags)
    else:
        for name, digest in tags.items():
            print(f"{digest}  {name}")
    return EXIT_OK


def cmd_refs(args: argparse.Namespace) -> int:
    store = open_from_args(args)
    found = store.refs(args.pattern)
    if args.json:
        print_json(found)
    else:
        for ref, digest in found.items():
            print(f"{digest}  {ref}")
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    from casstore.cli.output import escape
    from casstore.runs.catalog import list_runs

    store = open_from_args(args)
    runs = list_runs(store, pattern=args.pattern, model=args.model)
    if args.json:
        print_json([run.as_json() for run in runs])
        return EXIT_OK
    if not runs:
        print("no recorded runs" + (" match" if args.pattern or args.model else ""))
    for run in runs:
        score = "" if run.score is None else f"  score {run.score:g}"
        print(
            f"{run.digest}  {escape(run.ref)}  {run.created or '?'}  "
            f"{escape(run.model or '-')}{score}"
        )
    return EXIT_OK


def register(add: Adder) -> None:
    p = add("tag", cmd_tag, "name an object (a ref under refs/tags/; never moved without --force)")
    p.add_argument("name", metavar="NAME", help="a name, namespaces allowed: team-a/law/run7")
    p.add_argument("digest", nargs="?", metavar="DIGEST")
    p.add_argument("-d", "--delete", action="store_true", help="delete the tag NAME")
    p.add_argument("--force", action="store_true", help="move a tag that names another object")

    p = add("tags", cmd_tags, "list tags and the digests they name")
    p.add_argument("pattern", nargs="?", metavar="PATTERN", help="a glob: team-a/*")
    p.add_argument("--json", action="store_true", help="print a JSON object of name: digest")

    p = add("refs", cmd_refs, "list every ref: tags, runs, gradings and suites (gc's roots)")
    p.add_argument("pattern", nargs="?", metavar="PATTERN", help="a glob: runs/*, *law*")
    p.add_argument("--json", action="store_true", help="print a JSON object of ref: digest")

    p = add("runs", cmd_runs, "list recorded runs, newest first, with their score once graded")
    p.add_argument("pattern", nargs="?", metavar="PATTERN", help="a glob over run refs: t-1*")
    p.add_argument("--model", metavar="MODEL", help="only runs of this orchestrator model")
    p.add_argument("--json", action="store_true", help="print a JSON list")
