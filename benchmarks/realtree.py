"""A real-world tree: the running Python's standard library and installed packages.

Generated workloads flatter (few, even files); real trees have thousands of
small files, binaries and links. This builds, from the running interpreter,
``initial.tar`` (and ``.tar.gz``) of its standard library and site-packages,
and ``final.tar`` with 1% of its files edited, then measures, each as a
``cas`` command in its own process, the median of ``runs``:

- tree ingest of the .tar against ``cas put`` of the same .tar as one blob, and
  the final's ingest into that store (reported: the common case, a run's last
  snapshot after an agent touched a few files);
- .tar.gz ingest against .tar ingest;
- ``cas get TREE -o DIR`` against ``tar -xf`` of the same .tar;
- ``cas get TREE -o x.tar`` against ``tar -cf`` of the materialised folder.

Every measurement starts from a warm page cache, after a ``sync``.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

INGEST_TARGET = 0.8
GZIP_TARGET = 1.3
CHECKOUT_TARGET = 0.8


def _add(tar: tarfile.TarFile, root: Path, arcname: str, skip: set[Path]) -> int:
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if Path(folder, d) not in skip)
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]):
            path = os.path.join(folder, name)
            tar.add(
                path, arcname=os.path.join(arcname, os.path.relpath(path, root)), recursive=False
            )
            count += 1
    return count


def build_workload(folder: Path, seed: int = 1) -> tuple[Path, Path, Path, int]:
    """(initial.tar, initial.tar.gz, final.tar, file count), reused when already built."""
    folder.mkdir(parents=True, exist_ok=True)
    initial, gz, final = folder / "initial.tar", folder / "initial.tar.gz", folder / "final.tar"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    packages = Path(sysconfig.get_paths()["purelib"])
    if not final.exists():
        with tarfile.open(initial, "w", format=tarfile.PAX_FORMAT) as tar:
            count = _add(tar, stdlib, "lib/python", {stdlib / "site-packages"})
            count += _add(tar, packages, "site-packages", set())
        with open(initial, "rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        _edit(initial, final, seed)
    with tarfile.open(initial) as tar:
        count = sum(1 for m in tar if m.isfile())
    return initial, gz, final, count


def _edit(initial: Path, final: Path, seed: int) -> None:
    """The final snapshot: 1% of the files edited (a line appended), as an agent would."""
    rng = random.Random(seed)
    with tarfile.open(initial) as src, tarfile.open(final, "w", format=tarfile.PAX_FORMAT) as dst:
        for member in src:
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if data is not None and rng.random() < 0.01:
                data += f"\n# edited by the agent, step {rng.randrange(100)}\n".encode()
                member.size = len(data)
            dst.addfile(member, None if data is None else io.BytesIO(data))


def _timed(command: list[str], cwd: Path | None = None) -> float:
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.decode()}")
    return elapsed


def _cas(*args: str) -> list[str]:
    return [sys.executable, "-m", "casstore", *args]


@dataclass
class RealTreeResult:
    files: int
    tar_bytes: int
    blob: float
    tree: float
    final: float
    tree_gz: float
    tar_x: float
    get_dir: float
    tar_c: float
    get_tar: float

    def ratios(self) -> list[tuple[str, float, float, str]]:
        """(what, ratio, target, comparison) for each target."""
        return [
            (
                "tree ingest (.tar) / put of the .tar as a blob",
                self.blob / self.tree,
                INGEST_TARGET,
                ">=",
            ),
            (".tar.gz ingest / .tar ingest", self.tree_gz / self.tree, GZIP_TARGET, "<="),
            ("cas get -o DIR against tar -xf", self.tar_x / self.get_dir, CHECKOUT_TARGET, ">="),
            ("cas get -o x.tar against tar -cf", self.tar_c / self.get_tar, CHECKOUT_TARGET, ">="),
        ]

    def lines(self) -> list[str]:
        out = [
            f"workload: {self.files} files, {self.tar_bytes / 1e6:.0f} MB as .tar",
            f"cas put (one blob) {self.blob:6.2f} s   cas put --tree {self.tree:6.2f} s   "
            f".tar.gz {self.tree_gz:6.2f} s   final.tar after it {self.final:6.2f} s",
            f"tar -xf            {self.tar_x:6.2f} s   cas get -o DIR {self.get_dir:6.2f} s",
            f"tar -cf            {self.tar_c:6.2f} s   cas get -o x.tar {self.get_tar:6.2f} s",
        ]
        for what, ratio, target, comparison in self.ratios():
            ok = ratio >= target if comparison == ">=" else ratio <= target
            out.append(
                f"{what:<48} {ratio:5.2f} (target {comparison} {target}) "
                f"{'ok' if ok else 'BELOW TARGET'}"
            )
        return out

    def met(self) -> bool:
        return all((r >= t if c == ">=" else r <= t) for _, r, t, c in self.ratios())


def run(workdir: Path, runs: int = 3) -> RealTreeResult:
    initial, gz, final, files = build_workload(workdir / "workload")
    times: dict[str, list[float]] = {}

    def fresh(name: str) -> str:
        store = workdir / name
        shutil.rmtree(store, ignore_errors=True)
        subprocess.run(_cas("init", str(store)), check=True, capture_output=True)
        return str(store)

    for _ in range(runs):
        times.setdefault("blob", []).append(
            _timed(_cas("--store", fresh("blob"), "put", str(initial)))
        )
        store = fresh("tree")
        times.setdefault("tree", []).append(
            _timed(_cas("--store", store, "put", "--tree", str(initial)))
        )
        times.setdefault("final", []).append(
            _timed(_cas("--store", store, "put", "--tree", str(final)))
        )
        times.setdefault("tree_gz", []).append(
            _timed(_cas("--store", fresh("tree-gz"), "put", "--tree", str(gz)))
        )
        digest = subprocess.run(
            _cas("tree", str(initial)), capture_output=True, text=True
        ).stdout.split()[0]
        for name in ("x", "dir", "y.tar", "z.tar"):
            target = workdir / name
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(
                missing_ok=True
            )
        (workdir / "x").mkdir()
        times.setdefault("tar_x", []).append(
            _timed(["tar", "-xf", str(initial), "-C", str(workdir / "x")])
        )
        times.setdefault("get_dir", []).append(
            _timed(_cas("--store", store, "get", digest, "-o", str(workdir / "dir")))
        )
        times.setdefault("tar_c", []).append(
            _timed(["tar", "-cf", str(workdir / "y.tar"), "-C", str(workdir / "dir"), "."])
        )
        times.setdefault("get_tar", []).append(
            _timed(_cas("--store", store, "get", digest, "-o", str(workdir / "z.tar")))
        )
    median = {name: statistics.median(values) for name, values in times.items()}
    return RealTreeResult(files, initial.stat().st_size, **median)


if __name__ == "__main__":
    import tempfile

    result = run(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
    print("\n".join(result.lines()))
    raise SystemExit(0 if result.met() else 1)
