"""restic, borg and DVC on the snapshot workload, side by side with casstore.

Each tool stores the initial snapshot's .tar, then the final one's, into a
fresh repository; we report the time of each and the repository's size after
each. Tools that are not installed are skipped (``make bench-peers`` installs
them: restic and borgbackup from Debian, DVC from PyPI into ``.venv-peers``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.workloads import folder_bytes

#: Where ``make bench-peers`` puts DVC, beside the project's own venv.
PEERS_VENV = Path(__file__).resolve().parent.parent / ".venv-peers"


@dataclass
class PeerResult:
    tool: str
    initial_seconds: float
    final_seconds: float
    initial_stored: int
    final_increment: int


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(
        args, cwd=cwd, check=True, capture_output=True, env={**os.environ, **(env or {})}
    )
    return time.perf_counter() - start


def _restic(work: Path, initial: Path, final: Path) -> PeerResult | None:
    if shutil.which("restic") is None:
        return None
    repo = work / "restic-repo"
    env = {
        "RESTIC_PASSWORD": "bench",
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_CACHE_DIR": str(work / "restic-cache"),
    }
    # Repository version 2 compresses (zstd, "auto" level), as casstore does.
    _run(["restic", "init", "--repository-version", "2"], work, env)
    t1 = _run(["restic", "backup", "--compression", "auto", str(initial)], work, env)
    size1 = folder_bytes(repo)
    t2 = _run(["restic", "backup", "--compression", "auto", str(final)], work, env)
    return PeerResult("restic", t1, t2, size1, folder_bytes(repo) - size1)


def _borg(work: Path, initial: Path, final: Path) -> PeerResult | None:
    if shutil.which("borg") is None:
        return None
    repo = work / "borg-repo"
    env = {
        "BORG_REPO": str(repo),
        "BORG_BASE_DIR": str(work / "borg-base"),
        "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
    }
    _run(["borg", "init", "--encryption", "none"], work, env)
    t1 = _run(["borg", "create", "--compression", "zstd,3", "::initial", str(initial)], work, env)
    size1 = folder_bytes(repo)
    t2 = _run(["borg", "create", "--compression", "zstd,3", "::final", str(final)], work, env)
    return PeerResult("borg", t1, t2, size1, folder_bytes(repo) - size1)


def _dvc(work: Path, initial: Path, final: Path) -> PeerResult | None:
    dvc = PEERS_VENV / "bin" / "dvc"
    if not dvc.exists():
        found = shutil.which("dvc")
        if found is None:
            return None
        dvc = Path(found)
    project = work / "dvc-project"
    project.mkdir()
    env = {"DVC_NO_ANALYTICS": "1"}
    _run([str(dvc), "init", "--no-scm", "-q"], project, env)
    cache = project / ".dvc" / "cache"
    # DVC tracks files in its workspace: the snapshot is copied in (not timed), then added.
    shutil.copy(initial, project / "snapshot.tar")
    t1 = _run([str(dvc), "add", "-q", "snapshot.tar"], project, env)
    size1 = folder_bytes(cache)
    (project / "snapshot.tar").unlink()
    shutil.copy(final, project / "snapshot.tar")
    t2 = _run([str(dvc), "add", "-q", "snapshot.tar"], project, env)
    return PeerResult("dvc", t1, t2, size1, folder_bytes(cache) - size1)


def run(workdir: Path, initial: Path, final: Path) -> list[PeerResult]:
    """Every installed peer on the same two .tar files."""
    results = []
    for name, func in (("restic", _restic), ("borg", _borg), ("dvc", _dvc)):
        work = workdir / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        result = func(work, initial, final)
        if result is not None:
            results.append(result)
        shutil.rmtree(work, ignore_errors=True)
    return results
