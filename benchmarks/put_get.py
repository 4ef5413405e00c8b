"""``cas put`` / ``cas get`` of a 1 GiB compressible file against their lower bounds.

put is compared with zstd alone at the same level and thread count; get with
zstd decompression plus BLAKE3 alone. Each is the best of several runs in the
same process, on the same file, so the ratio is meaningful on a noisy machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from benchmarks.workloads import compressible_file
from casstore import layout
from casstore.objectfile import CHUNK_SIZE, HEADER_SIZE

PUT_TARGET = 0.85
GET_TARGET = 0.85


@dataclass
class Comparison:
    name: str
    ours: float
    peer: float
    peer_label: str
    size: int
    target: float

    @property
    def ratio(self) -> float:
        return self.peer / self.ours

    def line(self) -> str:
        mbs = self.size / 1e6
        verdict = "ok" if self.ratio >= self.target else "BELOW TARGET"
        return (
            f"{self.name:<6} cas {self.ours:6.2f} s ({mbs / self.ours:6.0f} MB/s)   "
            f"{self.peer_label} {self.peer:6.2f} s ({mbs / self.peer:6.0f} MB/s)   "
            f"ratio {self.ratio:.2f} (target >= {self.target}) {verdict}"
        )


def best_of(
    runs: int, func: Callable[[], object], before: Callable[[], object] | None = None
) -> float:
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def cas(*args: str, cwd: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "casstore", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL
    )


def run(
    workdir: Path, *, size: int = 1 << 30, level: int = 3, threads: int = 0, runs: int = 3
) -> list[Comparison]:
    import zstandard

    threads = threads or os.cpu_count() or 1
    workdir.mkdir(parents=True, exist_ok=True)
    data = compressible_file(workdir / f"compressible-{size}.bin", size)
    (workdir / "store.toml").write_text(
        f"[store]\ncompression_level = {level}\ncompression_threads = {threads}\n"
    )
    store_dir = workdir / ".cas"
    digest = "blake3:" + _hash_file(data)
    key = store_dir / layout.object_key(digest)

    def fresh_store() -> None:
        shutil.rmtree(store_dir, ignore_errors=True)

    ours_put = best_of(runs, lambda: cas("put", str(data), cwd=workdir), before=fresh_store)
    out = workdir / "out.zst"
    zstd_cli = shutil.which("zstd")
    if zstd_cli:
        label = f"zstd -{level} -T{threads}"
        cmd = [zstd_cli, f"-{level}", f"-T{threads}", "-q", "-f", str(data), "-o", str(out)]
        peer_put = best_of(runs, lambda: subprocess.run(cmd, check=True))
    else:
        label = f"zstandard level {level} threads {threads}"

        def compress() -> None:
            cctx = zstandard.ZstdCompressor(level=level, threads=threads)
            with open(data, "rb") as src, open(out, "wb") as dst:
                cctx.copy_stream(src, dst, read_size=CHUNK_SIZE, write_size=CHUNK_SIZE)

        peer_put = best_of(runs, compress)
    results = [Comparison("put", ours_put, peer_put, label, size, PUT_TARGET)]

    # get: the object stored by the last put run is read back.
    dest = workdir / "got.bin"
    ours_get = best_of(
        runs,
        lambda: cas("get", digest, "-o", str(dest), cwd=workdir),
        before=lambda: dest.unlink(missing_ok=True),
    )

    def decompress_and_hash() -> None:
        hasher = blake3()
        with open(key, "rb") as f:
            f.seek(HEADER_SIZE)
            reader = zstandard.ZstdDecompressor().stream_reader(f, read_size=CHUNK_SIZE)
            while chunk := reader.read(CHUNK_SIZE):
                hasher.update(chunk)
        assert "blake3:" + hasher.hexdigest() == digest

    peer_get = best_of(runs, decompress_and_hash)
    results.append(Comparison("get", ours_get, peer_get, "zstd -d + BLAKE3", size, GET_TARGET))
    dest.unlink(missing_ok=True)
    out.unlink(missing_ok=True)
    return results


def _hash_file(path: Path) -> str:
    hasher = blake3(max_threads=blake3.AUTO)
    hasher.update_mmap(path)
    return hasher.hexdigest()
