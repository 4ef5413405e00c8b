"""``cas report``: one self-contained HTML page for a run, a grading or a suite."""

from __future__ import annotations

import argparse
import os

from casstore.cli.common import EXIT_OK, Adder, open_from_args
from casstore.errors import DestinationError


def cmd_report(args: argparse.Namespace) -> int:
    from casstore.fileio import atomic_write
    from casstore.runs.report import build_report

    if os.path.exists(args.output) and not args.force:
        raise DestinationError(f"{args.output} exists: pass --force to replace it")
    text = build_report(open_from_args(args), args.record, args.other)
    with atomic_write(args.output, durable=False) as f:
        f.write(text.encode("utf-8"))
    print(f"wrote {args.output} ({len(text.encode()) // 1024 + 1} KiB, no external resources)")
    return EXIT_OK


def register(add: Adder) -> None:
    p = add(
        "report",
        cmd_report,
        "write a run, grading or suite (or two of a kind, compared) as one self-contained "
        "HTML page",
    )
    p.add_argument("record", metavar="RECORD", help="a run, grading or suite: digest, ref or file")
    p.add_argument("other", nargs="?", metavar="OTHER", help="another of the same kind, compared")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the HTML file to write")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
