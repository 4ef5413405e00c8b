"""casstore against restic, both into one SeaweedFS bucket, on a real tree.

The workload is ``benchmarks/realtree.py``'s: the running Python's standard
library and installed packages as ``initial.tar``, and ``final.tar`` with 1% of
its files edited. Each run, into a fresh prefix and a fresh restic repository:

- ``cas put --tree initial.tar`` against ``restic backup --stdin`` of it;
- the same for ``final.tar`` (the common case: a run's snapshot after an agent
  touched a few files);
- re-read and verify everything stored: ``cas fsck`` against
  ``restic check --read-data``.

Every step is a new process; the figure is the median of ``runs``. restic is
optional (``make bench-peers`` installs it from Debian): without it, only
casstore's times are printed. ``--profile`` also writes a cProfile of each
casstore step, to see where the time goes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.realtree import build_workload
from tests.s3_server import S3Server, server_environment, start_seaweedfs

BUCKET = "bench"
#: restic's time over casstore's, at least.
TARGETS = {"initial": 1.2, "final": 2.0, "verify": 1.0}
STEPS = ("initial", "final", "verify")


@dataclass
class Times:
    cas: dict[str, list[float]] = field(default_factory=dict)
    restic: dict[str, list[float]] = field(default_factory=dict)

    def add(self, tool: str, step: str, seconds: float) -> None:
        getattr(self, tool).setdefault(step, []).append(seconds)

    def median(self, tool: str, step: str) -> float | None:
        values = getattr(self, tool).get(step)
        return statistics.median(values) if values else None


def _timed(command: list[str], env: dict[str, str], stdin: Path | None = None) -> float:
    start = time.perf_counter()
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as source:
        done = subprocess.run(command, env=env, stdin=source, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.decode()[-2000:]}")
    return elapsed


def _cas(url: str, *args: str, profile: Path | None = None) -> list[str]:
    runner = ["-m", "cProfile", "-o", str(profile)] if profile else []
    return [sys.executable, *runner, "-m", "casstore", "--store", url, "--no-cache", *args]


def _once(
    server: S3Server, initial: Path, final: Path, work: Path, times: Times, profile: bool
) -> None:
    # Byte code written and reused, as after any pip install: a machine that sets
    # PYTHONDONTWRITEBYTECODE would otherwise compile the S3 stack (~1 s) in every step.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(server.env())
    url = f"s3://{BUCKET}/cas-{uuid.uuid4().hex[:8]}"
    subprocess.run(_cas(url, "init"), env=env, check=True, capture_output=True)
    for step, source in (("initial", initial), ("final", final)):
        out = work / f"{step}.prof" if profile else None
        times.add("cas", step, _timed(_cas(url, "put", "--tree", str(source), profile=out), env))
    out = work / "verify.prof" if profile else None
    times.add("cas", "verify", _timed(_cas(url, "fsck", profile=out), env))
    if shutil.which("restic") is None:
        return
    cache = work / f"restic-cache-{uuid.uuid4().hex[:8]}"
    restic_env = {
        **env,
        "RESTIC_PASSWORD": "bench",
        "RESTIC_REPOSITORY": f"s3:{server.endpoint_url}/{BUCKET}/restic-{uuid.uuid4().hex[:8]}",
        "RESTIC_CACHE_DIR": str(cache),
    }
    # Repository version 2 compresses (zstd, "auto" level), as casstore does.
    _timed(["restic", "init", "--repository-version", "2"], restic_env)
    for step, source in (("initial", initial), ("final", final)):
        backup = ["restic", "backup", "--stdin", "--stdin-filename", "snapshot.tar"]
        times.add("restic", step, _timed([*backup, "--compression", "auto"], restic_env, source))
    times.add("restic", "verify", _timed(["restic", "check", "--read-data"], restic_env))
    shutil.rmtree(cache, ignore_errors=True)


def run(workdir: Path, runs: int = 3, profile: bool = False) -> Times:
    initial, _gz, final, _files = build_workload(workdir / "workload")
    folder = workdir / f"seaweedfs-{uuid.uuid4().hex[:8]}"
    server = start_seaweedfs(folder)
    times = Times()
    try:
        with server_environment(server):
            import s3fs

            s3fs.S3FileSystem(**server.storage_options()).mkdir(BUCKET)
            for _ in range(runs):
                _once(server, initial, final, workdir, times, profile)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return times


def report(times: Times) -> tuple[list[str], bool]:
    """Lines to print, and whether every target that could be checked was met."""
    lines = [f"{'step':<10} {'casstore':>10} {'restic':>10} {'ratio':>7}  target"]
    met = True
    for step in STEPS:
        cas, restic = times.median("cas", step), times.median("restic", step)
        assert cas is not None
        if restic is None:
            lines.append(f"{step:<10} {cas:9.2f}s {'-':>10}")
            continue
        ratio = restic / cas
        ok = ratio >= TARGETS[step]
        met &= ok
        lines.append(
            f"{step:<10} {cas:9.2f}s {restic:9.2f}s {ratio:7.2f}  >= {TARGETS[step]} "
            f"{'ok' if ok else 'BELOW TARGET'}"
        )
    return lines, met


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.s3_restic", description=__doc__)
    parser.add_argument("--workdir", type=Path, help="default: a temp folder")
    parser.add_argument("--runs", type=int, default=3, help="median of N runs")
    parser.add_argument(
        "--profile", action="store_true", help="write a cProfile of each cas step to the workdir"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="casstore-s3-restic-"))
    times = run(workdir, args.runs, args.profile)
    lines, met = report(times)
    print("\n".join(lines))
    if shutil.which("restic") is None:
        print("restic not installed (make bench-peers): its targets are not checked")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
