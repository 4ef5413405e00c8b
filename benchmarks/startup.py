"""Start-up: ``cas --version`` against ``python -c pass`` (the interpreter alone)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

#: cas --version may take at most this many times the bare interpreter's start.
TARGET = 3.0


def _best(args: list[str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def run(runs: int = 15) -> tuple[float, float]:
    """(seconds for ``cas --version``, seconds for ``python -c pass``), best of ``runs``."""
    script = Path(sys.executable).with_name("cas")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "casstore"]
    cas = _best([*command, "--version"], runs)
    bare = _best([sys.executable, "-c", "pass"], runs)
    return cas, bare
