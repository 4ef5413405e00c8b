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
from casstore.format import layout
from casstore.format.objects import HEADER_SIZE, IO_SIZE

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
        if not self.target:
            verdict, target = "(for information)", ""
        else:
            target = f"(target >= {self.target}) "
        return (
            f"{self.name:<12} cas {self.ours:6.2f} s ({mbs / self.ours:6.0f} MB/s)   "
            f"{self.peer_label} {self.peer:6.2f} s ({mbs / self.peer:6.0f} MB/s)   "
            f"ratio {self.ratio:.2f} {target}{verdict}"
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
        os.sync()

    ours_put = best_of(runs, lambda: cas("put", str(data), cwd=workdir), before=fresh_store)
    out = workdir / "out.zst"
    zstd_cli = shutil.which("zstd")
    if zstd_cli:
        label = f"zstd -{level} -T{threads}"
        cmd = [zstd_cli, f"-{level}", f"-T{threads}", "-q", "-f", str(data), "-o", str(out)]
        peer_put = best_of(runs, lambda: subprocess.run(cmd, check=True), before=os.sync)
    else:
        label = f"zstandard level {level} threads {threads}"

        def compress() -> None:
            cctx = zstandard.ZstdCompressor(level=level, threads=threads)
            with open(data, "rb") as src, open(out, "wb") as dst:
                cctx.copy_stream(src, dst, read_size=IO_SIZE, write_size=IO_SIZE)

        peer_put = best_of(runs, compress, before=os.sync)
    results = [Comparison("put", ours_put, peer_put, label, size, PUT_TARGET)]

    # get: the object stored by the last put run is read back.
    def get_to(dest: Path) -> float:
        def clean_slate() -> None:
            # Earlier runs leave a GiB of dirty pages whose writeback would throttle this one.
            dest.unlink(missing_ok=True)
            os.sync()

        seconds = best_of(
            runs + 2, lambda: cas("get", digest, "-o", str(dest), cwd=workdir), before=clean_slate
        )
        dest.unlink(missing_ok=True)
        return seconds

    # The peer writes nothing: to compare the software, not this machine's disk
    # writeback, the destination is in memory (tmpfs) when there is one.
    memory = Path("/dev/shm")
    in_memory = memory.is_dir() and os.access(memory, os.W_OK)
    ours_get = get_to((memory if in_memory else workdir) / "casstore-bench-got.bin")
    on_disk = get_to(workdir / "got.bin") if in_memory else ours_get

    # The peer is a process too, as a user would run it (zstd -dc | b3sum): both
    # sides pay for starting one.
    peer_script = (
        "import sys, zstandard\n"
        "from blake3 import blake3\n"
        "h = blake3()\n"
        "with open(sys.argv[1], 'rb') as f:\n"
        f"    f.seek({HEADER_SIZE})\n"
        f"    r = zstandard.ZstdDecompressor().stream_reader(f, read_size={IO_SIZE})\n"
        f"    while c := r.read({IO_SIZE}):\n"
        "        h.update(c)\n"
        "print('blake3:' + h.hexdigest())\n"
    )

    def decompress_and_hash() -> None:
        result = subprocess.run(
            [sys.executable, "-c", peer_script, str(key)], check=True, capture_output=True
        )
        assert result.stdout.decode().strip() == digest

    peer_get = best_of(runs + 2, decompress_and_hash, before=os.sync)
    where = "to tmpfs" if in_memory else "to disk"
    results.append(
        Comparison(f"get {where}", ours_get, peer_get, "zstd -d + BLAKE3", size, GET_TARGET)
    )
    if in_memory:
        results.append(Comparison("get to disk", on_disk, peer_get, "zstd -d + BLAKE3", size, 0.0))
    out.unlink(missing_ok=True)
    return results


def _hash_file(path: Path) -> str:
    hasher = blake3(max_threads=blake3.AUTO)
    hasher.update_mmap(path)
    return hasher.hexdigest()
