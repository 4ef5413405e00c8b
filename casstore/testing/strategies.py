"""Hypothesis strategies for snapshots: trees of files, folders and symlinks that shrink
to the smallest failing example (a name, a nesting, a size, a link)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

#: Name characters: ASCII that archives and file systems all keep, plus non-ASCII.
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-+=@éü日本"

names = st.text(NAME_CHARS, min_size=1, max_size=10).filter(lambda n: n not in (".", ".."))

contents = st.one_of(
    st.binary(max_size=64),
    # Larger files, around the sizes where storage changes (packed up to 1 MiB).
    st.builds(
        lambda n, unit: (unit * (n // len(unit) + 1))[:n],
        st.sampled_from([0, 1, 4095, 70_000, (1 << 20) - 1, (1 << 20) + 1]),
        st.binary(min_size=1, max_size=16),
    ),
)


@dataclass
class Snapshot:
    """A filesystem state: files (content, executable), symlinks (target), empty folders."""

    files: dict[str, tuple[bytes, bool]] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    folders: set[str] = field(default_factory=set)

    def paths(self) -> set[str]:
        return set(self.files) | set(self.symlinks) | self.folders

    def write(self, root: Path) -> Path:
        """Create the snapshot under ``root`` (which must not exist)."""
        root.mkdir(parents=True)
        for folder in sorted(self.folders):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for path, (data, executable) in sorted(self.files.items()):
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            os.chmod(target, 0o755 if executable else 0o644)
        for path, link in sorted(self.symlinks.items()):
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link, target)
        return root


def _free(snapshot: Snapshot, path: str) -> bool:
    """``path`` can be added: not taken, not below a file or link, not above a leaf."""
    taken = snapshot.paths()
    leaves = set(snapshot.files) | set(snapshot.symlinks)
    parts = path.split("/")
    parents = {"/".join(parts[:i]) for i in range(1, len(parts))}
    if path in taken or parents & leaves:
        return False
    return not any(other.startswith(path + "/") for other in taken)


@st.composite
def link_targets(draw: st.DrawFn, path: str, others: list[str]) -> str:
    """Where a symlink points: inside the snapshot, outside it, absolute, or nowhere."""
    depth = path.count("/")
    kind = draw(st.sampled_from(["inside", "outside", "absolute", "dangling"]))
    if kind == "inside" and others:
        return "../" * depth + draw(st.sampled_from(sorted(others)))
    if kind == "outside":
        return "../" * (depth + draw(st.integers(1, 3))) + draw(names)
    if kind == "absolute":
        return draw(st.sampled_from(["/usr/bin/python3", "/etc/hostname", "/nonexistent/x"]))
    return "missing-" + draw(names)


@st.composite
def snapshots(draw: st.DrawFn, max_entries: int = 12, symlinks: bool = True) -> Snapshot:
    """A snapshot of up to ``max_entries`` entries, nested up to four folders deep."""
    snapshot = Snapshot()
    kinds = ["file", "file", "file", "dir"] + (["symlink"] if symlinks else [])
    for _ in range(draw(st.integers(0, max_entries))):
        path = "/".join(draw(st.lists(names, min_size=1, max_size=4)))
        if not _free(snapshot, path):
            continue
        kind = draw(st.sampled_from(kinds))
        if kind == "file":
            snapshot.files[path] = (draw(contents), draw(st.booleans()))
        elif kind == "dir":
            snapshot.folders.add(path)
        else:
            snapshot.symlinks[path] = draw(link_targets(path, sorted(snapshot.files)))
    # Folders that hold something are implied by it: only empty ones are listed.
    snapshot.folders = {
        f for f in snapshot.folders if not any(p.startswith(f + "/") for p in snapshot.paths())
    }
    return snapshot
