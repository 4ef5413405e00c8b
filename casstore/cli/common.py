"""What every group of commands shares: exit codes, opening the store from the global
flags, progress bars, and JSON output."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from casstore.cli.progress import ProgressBar
    from casstore.store.objects import Store

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTEGRITY = 4

Command = Callable[[argparse.Namespace], int]


class Adder(Protocol):
    """Adds a subcommand: ``add(name, func, help)`` returns its parser for the options."""

    def __call__(self, name: str, func: Command, help: str) -> argparse.ArgumentParser: ...


def open_from_args(args: argparse.Namespace) -> Store:
    """The store the global flags (``--store``, ``--no-cache``, ``--read-only``) name."""
    import sys

    from casstore.format.layout import FORMAT_VERSION
    from casstore.store.open import open_store

    store = open_store(args.store, cache=not args.no_cache, read_only=args.read_only)
    if store.format_version < FORMAT_VERSION and args.command != "upgrade":
        print(
            f"cas: note: {store.url} is store format {store.format_version}; "
            f"`cas upgrade` converts it to format {FORMAT_VERSION} in place (lookups then "
            "cost a few requests however many runs it holds; older casstore versions "
            "will no longer read it)",
            file=sys.stderr,
        )
    return store


def progress(label: str, total: int | None, unit: str = "bytes") -> ProgressBar:
    from casstore.cli.progress import ProgressBar

    return ProgressBar(label, total, unit=unit)


def print_json(obj: object) -> None:
    print(json.dumps(obj, sort_keys=False))


def plan_setter(bar: Any) -> Callable[[int], None]:
    """A callback that sets a progress bar's total once the work is planned."""

    def plan(count: int) -> None:
        bar.total = count

    return plan


def positive_int(text: str) -> int:
    """An argparse type: a whole number of 1 or more (``-j 0`` would wait forever)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value
