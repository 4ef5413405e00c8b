"""Run every benchmark and print ratios with the absolute figures beside them.

Ratios compare casstore with a limit or a peer measured in the same run (the
machines are shared and noisy); each target is printed beside its ratio, and
the exit status is 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import large_file, peers, put_get, realtree, s3, startup, trees

if TYPE_CHECKING:
    from casstore.store.objects import Store

RESTIC_TIME_TARGET = 1.0
RESTIC_INCREMENT_TARGET = 4.0


def _verdict(ratio: float, target: float) -> str:
    return "ok" if ratio >= target else "BELOW TARGET"


def record_run(workdir: Path, result: trees.TreeResults) -> tuple[Store, str]:
    """A run recorded with runner_hooks: the tree workload as its snapshots."""
    from casstore.store.open import init_store
    from runner_hooks import RunRecorder

    store, _ = init_store(str(workdir / "run-store"))
    trajectory = workdir / "trajectory.json"
    trajectory.write_text(json.dumps({"messages": ["benchmark"] * 1000}))
    with RunRecorder(store=store, trajectory_id="bench", code_root=workdir) as recorder:
        recorder.attach_snapshot("initial", result.initial_tar)
        recorder.attach_snapshot("final", result.final_tar)
        digest = recorder.finish(trajectory)
    return store, digest


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--workdir", type=Path, help="where workloads and stores go (default: a temp folder)"
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the put/get file")
    parser.add_argument("--runs", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="casstore-bench-"))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"workdir: {workdir}")
    failed = False

    print("\n# start-up")
    cas_s, bare_s = startup.run()
    ratio = bare_s / cas_s
    target = 1 / startup.TARGET
    print(
        f"cas --version {cas_s * 1000:5.0f} ms   python -c pass {bare_s * 1000:5.0f} ms   "
        f"ratio {ratio:.2f} (target >= {target:.2f}: within {startup.TARGET:.0f}x) "
        f"{_verdict(ratio, target)}"
    )
    failed |= ratio < target

    print("\n# put and get of one large file")
    for result in put_get.run(workdir / "put_get", size=args.size_mib << 20, runs=args.runs):
        print(result.line())
        failed |= result.ratio < result.target

    print("\n# snapshots as trees")
    tree_result = trees.run(workdir / "trees", runs=args.runs)
    for line in tree_result.lines():
        print(line)
    failed |= tree_result.ingest_ratio < trees.INGEST_TARGET or tree_result.diff_seconds >= 1

    print("\n# the same snapshots in restic, borg and DVC (the .tar files)")
    found = peers.run(workdir / "peers", tree_result.initial_tar, tree_result.final_tar)
    ours = tree_result
    rows = [
        (
            "casstore",
            ours.tree_seconds,
            ours.final_seconds,
            ours.initial_stored,
            ours.final_increment,
        )
    ]
    rows += [
        (p.tool, p.initial_seconds, p.final_seconds, p.initial_stored, p.final_increment)
        for p in found
    ]
    print(f"{'tool':<10} {'initial':>9} {'final':>9} {'stored':>11} {'final adds':>11}")
    for tool, t1, t2, stored, inc in rows:
        print(f"{tool:<10} {t1:8.2f}s {t2:8.2f}s {stored / 1e6:8.1f} MB {inc / 1e6:8.1f} MB")
    restic = next((p for p in found if p.tool == "restic"), None)
    if restic is None:
        print("restic not installed (make bench-peers): its targets are not checked")
    else:
        time_ratio = restic.initial_seconds / tree_result.tree_seconds
        inc_ratio = restic.final_increment / max(tree_result.final_increment, 1)
        print(
            f"{'initial ingest: restic time / cas time':<44} ratio {time_ratio:5.2f} "
            f"(target >= {RESTIC_TIME_TARGET}) {_verdict(time_ratio, RESTIC_TIME_TARGET)}"
        )
        print(
            f"{'final increment: restic / cas':<44} ratio {inc_ratio:5.2f} "
            f"(target >= {RESTIC_INCREMENT_TARGET}) "
            f"{_verdict(inc_ratio, RESTIC_INCREMENT_TARGET)}"
        )
        failed |= time_ratio < RESTIC_TIME_TARGET or inc_ratio < RESTIC_INCREMENT_TARGET

    print("\n# a large file inside a snapshot")
    print(large_file.run(workdir / "large_file").line())

    print("\n# a real tree: this Python's standard library and installed packages")
    real = realtree.run(workdir / "realtree", runs=args.runs)
    print("\n".join(real.lines()))
    failed |= not real.met()

    print(f"\n# S3 on SeaweedFS: {s3.COUNT} objects of {s3.SIZE} bytes, and a run's closure")
    run_store, run_digest = record_run(workdir, tree_result)
    rates, closure = s3.run(workdir / "s3", closure=(run_store, run_digest))
    for rate in rates:
        print(rate.line())
    for name, ratio, target in s3.report(rates):
        print(f"{name:<44} ratio {ratio:5.2f} (target >= {target}) {_verdict(ratio, target)}")
        failed |= ratio < target
    for line in closure.lines() if closure else []:
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
