"""Run every benchmark and print ratios with the absolute figures beside them."""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

from benchmarks import put_get


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
    for result in put_get.run(workdir / "put_get", size=args.size_mib << 20, runs=args.runs):
        print(result.line())
        failed |= result.ratio < result.target
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
