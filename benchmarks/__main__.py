"""Run every benchmark and print ratios with the absolute figures beside them."""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

from benchmarks import put_get, s3, trees


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
    print("\n# put and get of one large file")
    for result in put_get.run(workdir / "put_get", size=args.size_mib << 20, runs=args.runs):
        print(result.line())
        failed |= result.ratio < result.target
    print("\n# snapshots as trees")
    trees_result = trees.run(workdir / "trees", runs=args.runs)
    for line in trees_result.lines():
        print(line)
    failed |= trees_result.ingest_ratio < trees.INGEST_TARGET or trees_result.diff_seconds >= 1
    print(f"\n# S3 on SeaweedFS: {s3.COUNT} objects of {s3.SIZE} bytes")
    rates = s3.run(workdir / "s3")
    for rate in rates:
        print(rate.line())
    for name, ratio, target in s3.report(rates):
        verdict = "ok" if ratio >= target else "BELOW TARGET"
        print(f"{name:<40} ratio {ratio:5.2f} (target >= {target}) {verdict}")
        failed |= ratio < target
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
