"""Snapshots as trees: ingest speed against one blob, dedup of a final snapshot, diff speed.

The workload is generated from a seed: an initial snapshot of about 300 MB in
about 15,000 files of mixed text and binary content, and a final snapshot with
1% of its files modified and a few added and removed, each as .tar and .tar.gz.
"""

from __future__ import annotations

import gzip
import io
import random
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from benchmarks.workloads import folder_bytes, text_block
from casstore.format.tree import Entry
from casstore.trees.diff import diff_entries

FILES = 15_000
INGEST_TARGET = 0.60


@dataclass(frozen=True)
class Snapshot:
    files: dict[str, bytes]

    def write_tar(self, path: Path) -> None:
        with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
            for name in sorted(self.files):
                data = self.files[name]
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 1_700_000_000
                info.mode = 0o755 if name.endswith(".sh") else 0o644
                tar.addfile(info, io.BytesIO(data))


def generate(seed: int = 1, files: int = FILES) -> tuple[Snapshot, Snapshot]:
    rng = random.Random(seed)
    text = text_block(64 << 20, b"trees")
    binary = blake3(b"trees-binary").digest(length=32 << 20)
    out: dict[str, bytes] = {}
    for i in range(files):
        folder = f"repo/{rng.choice(['src', 'lib', 'tests', 'docs', 'data', 'build'])}/{i % 97}"
        size = min(int(rng.lognormvariate(9.3, 1.3)), 4 << 20)
        if rng.random() < 0.7:
            start = rng.randrange(len(text) - size)
            out[f"{folder}/file{i}.txt"] = text[start : start + size]
        else:
            start = rng.randrange(len(binary) - size)
            out[f"{folder}/blob{i}.bin"] = binary[start : start + size]
    final = dict(out)
    names = sorted(out)
    for name in rng.sample(names, len(names) // 100):
        data = bytearray(final[name])
        for _ in range(max(1, len(data) // 1000)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        final[name] = bytes(data) + b"\nedited by the agent\n"
    for name in rng.sample(names, 20):
        final.pop(name, None)
    for i in range(20):
        final[f"repo/new/output{i}.log"] = text[i * 5000 : i * 5000 + 5000]
    return Snapshot(out), Snapshot(final)


def cas(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "casstore", *args], cwd=cwd, check=True, capture_output=True
    )
    return result.stdout.decode()


@dataclass
class TreeResults:
    snapshot_bytes: int
    tree_seconds: float
    blob_seconds: float
    initial_stored: int
    final_increment: int
    targz_seconds: float
    diff_seconds: float
    final_seconds: float
    final_targz_seconds: float
    initial_tar: Path
    final_tar: Path

    @property
    def ingest_ratio(self) -> float:
        return self.blob_seconds / self.tree_seconds

    def lines(self) -> list[str]:
        mb = self.snapshot_bytes / 1e6
        ok = "ok" if self.ingest_ratio >= INGEST_TARGET else "BELOW TARGET"
        return [
            f"snapshot: {mb:.0f} MB in about {FILES} files",
            f"tree ingest of initial .tar   {self.tree_seconds:6.2f} s "
            f"({mb / self.tree_seconds:5.0f} MB/s)   put as one blob {self.blob_seconds:6.2f} s "
            f"({mb / self.blob_seconds:5.0f} MB/s)   "
            f"ratio {self.ingest_ratio:.2f} (target >= {INGEST_TARGET}) {ok}",
            f"tree ingest of initial .tar.gz {self.targz_seconds:5.2f} s",
            f"tree ingest of final .tar     {self.final_seconds:6.2f} s, "
            f".tar.gz {self.final_targz_seconds:5.2f} s (initial already stored)",
            f"stored after initial: {self.initial_stored / 1e6:8.1f} MB",
            f"stored for final:     {self.final_increment / 1e6:8.1f} MB more "
            "(1% of files changed)",
            f"diff of two 100,000-entry trees differing in 100 files: {self.diff_seconds:.3f} s "
            f"(target < 1 s) {'ok' if self.diff_seconds < 1 else 'TOO SLOW'}",
        ]


def run(workdir: Path, runs: int = 2) -> TreeResults:
    workdir.mkdir(parents=True, exist_ok=True)
    initial, final = generate()
    paths = {name: workdir / name for name in ("initial.tar", "final.tar")}
    initial.write_tar(paths["initial.tar"])
    final.write_tar(paths["final.tar"])
    targz = workdir / "initial.tar.gz"
    targz.write_bytes(gzip.compress(paths["initial.tar"].read_bytes(), compresslevel=6, mtime=0))
    final_targz = workdir / "final.tar.gz"
    final_targz.write_bytes(
        gzip.compress(paths["final.tar"].read_bytes(), compresslevel=6, mtime=0)
    )
    (workdir / "store.toml").write_text("[store]\n")
    store = workdir / ".cas"

    def timed(*args: str) -> float:
        shutil.rmtree(store, ignore_errors=True)
        start = time.perf_counter()
        cas(*args, cwd=workdir)
        return time.perf_counter() - start

    tree_s = min(timed("put", "--tree", str(paths["initial.tar"])) for _ in range(runs))
    blob_s = min(timed("put", str(paths["initial.tar"])) for _ in range(runs))
    targz_s = min(timed("put", "--tree", str(targz)) for _ in range(runs))

    def final_after_initial(source: Path) -> float:
        shutil.rmtree(store, ignore_errors=True)
        cas("put", "--tree", str(paths["initial.tar"]), cwd=workdir)
        start = time.perf_counter()
        cas("put", "--tree", str(source), cwd=workdir)
        return time.perf_counter() - start

    final_s = min(final_after_initial(paths["final.tar"]) for _ in range(runs))
    final_targz_s = min(final_after_initial(final_targz) for _ in range(runs))
    shutil.rmtree(store, ignore_errors=True)
    cas("put", "--tree", str(paths["initial.tar"]), cwd=workdir)
    initial_stored = folder_bytes(store)
    cas("put", "--tree", str(paths["final.tar"]), cwd=workdir)
    increment = folder_bytes(store) - initial_stored
    return TreeResults(
        sum(len(d) for d in initial.files.values()),
        tree_s,
        blob_s,
        initial_stored,
        increment,
        targz_s,
        diff_speed(),
        final_s,
        final_targz_s,
        paths["initial.tar"],
        paths["final.tar"],
    )


def diff_speed(entries: int = 100_000, changed: int = 100) -> float:
    """Seconds to diff two stored-size trees (records decoded) that differ in ``changed`` files."""
    from casstore.format import tree

    digest = "blake3:" + "ab" * 32
    old = [Entry(f"dir{i % 1000}/file{i}", "file", i, digest) for i in range(entries)]
    new = list(old)
    for i in range(0, entries, entries // changed):
        new[i] = Entry(old[i].path, "file", i + 1, "blake3:" + "cd" * 32)
    a, b = tree.encode(old), tree.encode(new)
    start = time.perf_counter()
    result = diff_entries(tree.decode(a), tree.decode(b))
    seconds = time.perf_counter() - start
    assert len(result.modified) == changed
    return seconds
