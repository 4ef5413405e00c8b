"""Commands on names: tag, tags."""

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
    store.tag(args.name, digest)
    print(f"{digest}  {args.name}")
    return EXIT_OK


def cmd_tags(args: argparse.Namespace) -> int:
    store = open_from_args(args)
    tags = store.tags()
    if args.json:
        print_json(tags)
    else:
        for name, digest in tags.items():
            print(f"{digest}  {name}")
    return EXIT_OK


def register(add: Adder) -> None:
    p = add("tag", cmd_tag, "name an object (a ref under refs/tags/)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("digest", nargs="?", metavar="DIGEST")
    p.add_argument("-d", "--delete", action="store_true", help="delete the tag NAME")

    p = add("tags", cmd_tags, "list tags and the digests they name")
    p.add_argument("--json", action="store_true", help="print a JSON object of name: digest")
