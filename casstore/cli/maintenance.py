"""Commands that keep a store healthy: gc, fsck."""

from __future__ import annotations

import argparse
import sys

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
from casstore.errors import UsageError


def cmd_gc(args: argparse.Namespace) -> int:
    from casstore.config import counted, human_bytes
    from casstore.maintenance.gc import collect

    store = open_from_args(args)
    if args.break_lease:
        from casstore.maintenance.lease import break_lease

        print(f"removed {break_lease(store)} gc lease(s) of {store.url}")
        return EXIT_OK
    grace = _duration(args.grace)
    result = collect(
        store,
        grace=grace,
        dry_run=args.dry_run,
        log=lambda message: print(f"cas: warning: {message}", file=sys.stderr),
    )
    if args.json:
        print_json(result.as_json())
        return EXIT_OK
    would = "would be " if args.dry_run else ""
    for item in result.items:
        age = _age(item.age) if item.action != "restore" else "-"
        print(f"{item.action:8} {item.digest}  {item.kind:15} {human_bytes(item.size):>10}  {age}")
    print(f"{counted(result.roots, 'roots')}; {counted(result.reachable, 'objects')} reachable")
    print(
        f"{would}moved to the trash: {counted(result.trashed, 'objects')} "
        f"({human_bytes(result.trashed_bytes)}), unreachable and older than {args.grace}"
    )
    print(
        f"{would}deleted from the trash: {counted(result.deleted, 'objects')}, "
        f"{human_bytes(result.deleted_bytes)} {'to be ' if args.dry_run else ''}freed"
    )
    print(f"{would}restored from the trash (reachable again): {result.restored}")
    print(f"{would}rewritten packs: {result.packs_rewritten}")
    print(f"kept, unreachable but younger than {args.grace}: {result.young}")
    if result.leftovers:
        print(
            f"{would}removed: {result.leftovers} temp files of interrupted writers "
            f"({human_bytes(result.leftover_bytes)})"
        )
    return EXIT_OK


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit} old"
    return f"{seconds:.0f}s old"


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
    from casstore.cli.output import escape
    from casstore.config import counted, human_bytes
    from casstore.maintenance.fsck import fsck

    if not 0 < args.sample <= 100:
        raise UsageError("--sample is a percentage above 0, at most 100")
    store = open_from_args(args)
    with progress("fsck", None, unit="objects") as bar:
        result = fsck(
            store,
            sample_percent=args.sample,
            jobs=args.jobs,
            quarantine=not store.read_only,
            on_plan=plan_setter(bar),
            on_object=lambda: bar(1),
        )
    missing = result.missing or result.broken_refs
    code = EXIT_INTEGRITY if result.corrupt else EXIT_NOT_FOUND if missing else EXIT_OK
    if args.json:
        print_json(result.as_json())
        return code
    print(
        f"checked {result.checked} of {counted(result.total, 'objects')} "
        f"({human_bytes(result.checked_bytes)})"
    )
    for digest, problem in result.corrupt.items():
        print(f"corrupt   {problem if problem.startswith(digest) else f'{digest}: {problem}'}")
    for key in result.quarantined:
        print(f"moved to  {key}")
    for record, absent in result.missing.items():
        print(f"missing   {record} references {len(absent)} missing: {', '.join(absent[:3])}")
    for ref, digest in result.broken_refs.items():
        print(f"missing   {escape(ref)} names {digest}, which is not in the store")
    if result.leftovers:
        size = human_bytes(sum(item["size"] for item in result.leftovers))
        print(
            f"leftover  {len(result.leftovers)} temp files of interrupted writers ({size}), "
            "older than a day: cas gc removes them"
        )
    if code == EXIT_OK and not result.leftovers:
        print("no problems found")
    return code


def cmd_upgrade(args: argparse.Namespace) -> int:
    from casstore.format.layout import FORMAT_VERSION
    from casstore.store.upgrade import upgrade

    store = open_from_args(args)
    before = len(store.packs.listed())
    was = upgrade(store)
    after = len(store.packs.listed())
    if args.json:
        print_json(
            {"store": store.url, "from": was, "to": FORMAT_VERSION, "index_files": [before, after]}
        )
        return EXIT_OK
    if was < FORMAT_VERSION:
        print(f"upgraded {store.url} from store format {was} to {FORMAT_VERSION}")
    else:
        print(f"{store.url} is store format {FORMAT_VERSION} already")
    print(f"index files: {before} -> {after}")
    return EXIT_OK


def register(add: Adder) -> None:
    p = add(
        "gc",
        cmd_gc,
        "move objects unreachable from any ref (tags, runs, gradings, suites) to the trash, "
        "and empty the trash of those "
        "unreachable for longer than the grace period",
    )
    p.add_argument(
        "--grace",
        default="24h",
        metavar="DURATION",
        help="how old an unreachable object must be (and how long it stays in the trash) "
        "before it goes: 90s, 30m, 24h (default), 7d. Longer than any writer takes "
        "between storing objects and naming them by a ref",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="change nothing: list each object that would be trashed, deleted or restored, "
        "with its kind, size and age",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument(
        "--break-lease",
        action="store_true",
        help="remove the lease of a gc that died (only one gc runs at a time)",
    )

    p = add(
        "fsck",
        cmd_fsck,
        "re-hash every object (or a sample): corrupt ones are moved to quarantine/ "
        "(exit 4); references to missing objects are reported (exit 3)",
    )
    p.add_argument(
        "--sample", type=float, default=100.0, metavar="PERCENT", help="check a random sample"
    )
    p.add_argument("-j", "--jobs", type=positive_int, default=8, help="objects checked at once (8)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")

    p = add(
        "upgrade",
        cmd_upgrade,
        "convert the store to the current format in place, and merge its index files "
        "(idempotent; safe to rerun after an interruption)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary")
