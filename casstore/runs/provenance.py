"""Which code ran: git commit and dirty flag, Python and casstore versions, lock file.

Everything here is best effort: no git, or not a checkout, leaves the fields
empty rather than failing.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from casstore._version import __version__
from casstore.format.manifest import Code, Host

#: Dependency lock files, most specific first; the first found upward wins.
LOCK_FILES = (
    "uv.lock",
    "poetry.lock",
    "pdm.lock",
    "Pipfile.lock",
    "requirements.lock",
    "conda-lock.yml",
    "requirements.txt",
)


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(folder: str | os.PathLike[str] = ".") -> tuple[str, bool | None, Path | None]:
    """(commit SHA, dirty flag, checkout root); ``("", None, None)`` outside git."""
    path = Path(folder)
    sha = _git(path, "rev-parse", "HEAD")
    if not sha:
        return "", None, None
    root = _git(path, "rev-parse", "--show-toplevel")
    status = _git(path, "status", "--porcelain", "--untracked-files=no")
    return sha, (bool(status) if status is not None else None), Path(root) if root else None


def find_lock_file(folder: Path, stop: Path | None) -> Path | None:
    """The nearest lock file from ``folder`` upward, not above ``stop`` (the checkout)."""
    for candidate in (folder, *folder.parents):
        for name in LOCK_FILES:
            if (candidate / name).is_file():
                return candidate / name
        if stop is not None and candidate == stop:
            break
    return None


def host_provenance() -> Host:
    return Host(
        hostname=platform.node(),
        platform=platform.platform(),
        machine=platform.machine(),
        cpu_count=os.cpu_count() or 0,
    )


def code_provenance(folder: str | os.PathLike[str] = ".") -> tuple[Code, Path | None]:
    """The code fields of a record, and the lock file to store (when one is found).

    The returned Code has no lock-file reference yet: the caller stores the
    file and fills it in.
    """
    sha, dirty, root = git_state(folder)
    start = Path(folder).resolve()
    lock = find_lock_file(start, root if root is not None else start)
    name = ""
    if lock is not None:
        name = os.path.relpath(lock, root if root is not None else start).replace(os.sep, "/")
    return (
        Code(
            git_sha=sha,
            git_dirty=dirty,
            python_version=platform.python_version(),
            casstore_version=__version__,
            lock_file_name=name,
        ),
        lock,
    )
