"""The ``cas`` command: the parser, error translation and exit codes.

Commands live in one module per group (objects, refs, records, verify, share,
maintenance); each registers its subcommands here. Heavy modules (the store,
fsspec, s3fs) are imported inside the commands, so ``cas --help`` and
``cas --version`` start fast.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from casstore._version import __version__
from casstore.cli import (
    maintenance,
    objects,
    record,
    records,
    refs,
    report,
    share,
    suites,
    verify,
)
from casstore.cli.common import (
    EXIT_ERROR,
    EXIT_INTEGRITY,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    Command,
)
from casstore.errors import (
    CasError,
    IntegrityError,
    InvalidDigest,
    InvalidRefName,
    ObjectNotFound,
    UsageError,
)

EPILOG = """\
digests:
  Digests print in full as blake3:<64 hex>. Where a command takes a digest it
  also takes bare hex, a unique prefix of at least 8 hex characters, a ref
  (runs/t1, suites/law) or a tag name; commands that read a run, grading or
  suite also take its sidecar file.

store:
  --store URL, else $CAS_STORE, else [store] url in the nearest store.toml
  (current folder or its parents), else the embedded store .cas/ beside it.

exit codes:
  0  success
  1  other error (I/O, configuration, not a store, read-only store, bad record,
     a refused archive, a ref that would move, another gc running)
  2  usage error (bad arguments, invalid digest or ref name)
  3  not found (object, ref or prefix; a reference to a missing object)
  4  integrity failure (bytes that do not match their digest, a damaged bundle,
     local files that do not match a run, a suite whose scores do not follow)
  130, 143  interrupted (Ctrl-C), terminated (SIGTERM); partial output removed
"""


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, InvalidDigest | InvalidRefName | UsageError):
        return EXIT_USAGE
    if isinstance(exc, IntegrityError):
        return EXIT_INTEGRITY
    if isinstance(exc, ObjectNotFound):
        return EXIT_NOT_FOUND
    return EXIT_ERROR


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        import difflib
        import re

        typed = re.search(
            r"argument ([^:]*): invalid choice: '([^']*)' \(choose from (.*)\)", message
        )
        if typed:
            argument, value = typed.group(1), typed.group(2)
            choices = re.findall(r"'([^']*)'", typed.group(3))
            near = difflib.get_close_matches(value, choices, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f" (one of {', '.join(choices)})"
            # A subcommand's metavar is COMMAND; an option's value is not a command.
            what = "command" if argument == "COMMAND" else f"{argument.split('/')[-1]} value"
            message = f"unknown {what} '{value}'{hint}"
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

    def add(name: str, func: Command, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        p.set_defaults(func=func)
        return p

    for group in (objects, refs, records, record, suites, report, verify, share, maintenance):
        group.register(add)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Run ``cas`` with ``argv``; returns the exit code instead of exiting."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except _Terminated:
        print("cas: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("cas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (cas ls | head): it has what it wanted. Quietly done;
        # stdout goes nowhere, so flushing it at exit raises nothing either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (CasError, OSError) as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        message = str(exc) if isinstance(exc, CasError) else _os_message(exc)
        notes = "".join(f"; {note}" for note in getattr(exc, "__notes__", ()))
        print(f"cas: {message}{notes}", file=sys.stderr)
        return _exit_code(exc)


def _os_message(exc: OSError) -> str:
    if exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return str(exc)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, a cancelled CI job, a service stopped): unwound as Ctrl-C is,
    so that what a command was writing (a checkout's temp folder, a temp file) is
    removed, not left behind as the signal's default would."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> NoReturn:
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(run(argv))
