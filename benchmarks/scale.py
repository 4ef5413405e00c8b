"""A store holding many runs: what a cold command costs as the store's history grows.

N small runs (20 files and a manifest each) are stored one process each, as
separate people would store them. At N = 1, 100 and 1,000 the benchmark runs a
cold ``cas cat`` of one file of the first run and a cold ``cas verify`` of that
run, each in a new process, and reports the requests they sent by method
(counted by an HTTP proxy in front of SeaweedFS) and their wall time; the
same on a local store, counting files opened and folders listed. It also
stores the Nth run and counts what that cost. Last, one object is read from
a local store whose indexes name 10 million packed objects, for peak RSS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = (1, 100, 1000)
BUCKET = "scale"

RUN = """
import sys
from pathlib import Path
from casstore.format.manifest import Ref, RunManifest, encode
from casstore.store.open import open_store
url, i, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
root = folder / f"run{i}"
(root / "src").mkdir(parents=True, exist_ok=True)
for n in range(20):
    (root / "src" / f"f{n}.txt").write_text(f"run {i} file {n}\\n" * (n + 1))
(root / "shared.txt").write_text("the same in every run\\n")
store = open_store(url, cache=False)
tree = store.put_tree(root)
manifest = RunManifest(trajectory_id=f"run-{i}", initial_snapshot=Ref(tree.digest, tree.size))
print(store.put_bytes(encode(manifest)).digest, store.put_bytes(
    (root / "src" / "f3.txt").read_bytes()).digest)
"""

# A cas command that counts the files it opens and the folders it lists under the store.
COUNTED = """
import atexit, sys
root = sys.argv.pop(1)
counts = {"open": 0, "list": 0}
def hook(event, args):
    if event == "open" and str(args[0]).startswith(root):
        counts["open"] += 1
    elif event in ("os.scandir", "os.listdir") and str(args[0]).startswith(root):
        counts["list"] += 1
sys.addaudithook(hook)
atexit.register(lambda: sys.stderr.write(f"\\ncounted={counts['open']},{counts['list']}\\n"))
from casstore.cli.main import run
sys.exit(run(sys.argv[1:]))
"""


@dataclass
class Cost:
    seconds: float
    requests: Counter[str] = field(default_factory=Counter)

    def text(self) -> str:
        parts = ", ".join(f"{n} {m}" for m, n in sorted(self.requests.items()))
        return f"{sum(self.requests.values()):4d} ({parts or '-'}) {self.seconds:6.2f} s"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **(extra or {})}


def _cas(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "casstore", *args], capture_output=True, text=True, env=env
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"cas {' '.join(args)}: {done.stderr}")
    return elapsed, done.stderr


def _store_run(url: str, i: int, folder: Path, env: dict[str, str]) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", RUN, url, str(i), str(folder)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    manifest, file_digest = done.stdout.split()
    shutil.rmtree(folder / f"run{i}")
    return manifest, file_digest


@dataclass
class Row:
    runs: int
    cat: Cost
    verify: Cost
    write: Cost


def run_s3(workdir: Path, checkpoints: tuple[int, ...] = CHECKPOINTS) -> list[Row]:
    """Requests and wall time on SeaweedFS, through a counting proxy."""
    import s3fs

    from tests.s3_proxy import counting_proxy
    from tests.s3_server import server_environment, start_seaweedfs

    server = start_seaweedfs(workdir / "seaweedfs")
    rows = []
    try:
        with server_environment(server), counting_proxy(server.endpoint_url) as proxy:
            s3fs.S3FileSystem(**server.storage_options()).mkdir(BUCKET)
            url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
            env = _env({"AWS_ENDPOINT_URL_S3": proxy.url})
            _cas(["init", url], env)

            def measured(command: list[str] | int) -> Cost:
                proxy.reset()
                start = time.perf_counter()
                if isinstance(command, int):
                    _store_run(url, command, workdir, env)
                else:
                    _cas(["--no-cache", "--store", url, *command], env)
                return Cost(time.perf_counter() - start, Counter(proxy.counts))

            first: tuple[str, str] | None = None
            stored = 0
            for target in checkpoints:
                while stored < target - 1:
                    found = _store_run(url, stored, workdir, env)
                    first = first or found
                    stored += 1
                write = measured(stored)
                first = first or _store_run(url, 0, workdir, env)
                stored += 1
                manifest, file_digest = first
                cat = measured(["cat", file_digest])
                verify = measured(["verify", manifest])
                rows.append(Row(stored, cat, verify, write))
    finally:
        server.stop()
    return rows


def _counted(args: list[str], root: str) -> Cost:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", COUNTED, root, *args], capture_output=True, text=True, env=_env()
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    opened, listed = done.stderr.rsplit("counted=", 1)[1].strip().split(",")
    return Cost(elapsed, Counter({"files opened": int(opened), "folders listed": int(listed)}))


def run_local(workdir: Path, checkpoints: tuple[int, ...] = CHECKPOINTS) -> list[Row]:
    """Files opened and folders listed on a local store."""
    url = str(workdir / "local-store")
    env = _env()
    _cas(["init", url], env)
    rows = []
    first: tuple[str, str] | None = None
    stored = 0
    for target in checkpoints:
        while stored < target - 1:
            found = _store_run(url, stored, workdir, env)
            first = first or found
            stored += 1
        start = time.perf_counter()
        found = _store_run(url, stored, workdir, env)
        write = Cost(time.perf_counter() - start)
        first = first or found
        stored += 1
        manifest, file_digest = first
        cat = _counted(["--store", url, "cat", file_digest], url)
        verify = _counted(["--store", url, "verify", manifest], url)
        rows.append(Row(stored, cat, verify, write))
    return rows


def run_large_index(workdir: Path, count: int = 10_000_000) -> tuple[int, float]:
    """Peak RSS (KiB) and time of a cold ``cas cat`` in a store indexing ``count`` objects."""
    from casstore.store.open import init_store
    from tests.helpers import build_large_index, run_measured

    store, _ = init_store(str(workdir / "large-index"))
    digest = build_large_index(store, count, b"the one object stored for real")
    start = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        code, kib = run_measured(["--store", store.url, "cat", digest], stdout=devnull)
    elapsed = time.perf_counter() - start
    shutil.rmtree(workdir / "large-index")
    if code != 0:
        raise RuntimeError("cas cat failed on the large index")
    return kib, elapsed


def lines(s3_rows: list[Row], local_rows: list[Row], large: tuple[int, float]) -> list[str]:
    out = ["S3 (SeaweedFS), requests by method and wall time of each command (a new process):"]
    out.append(f"{'runs':>6}  {'cold cas cat of one file':<40}{'cold cas verify of one run':<40}")
    for row in s3_rows:
        out.append(f"{row.runs:>6}  {row.cat.text():<40}{row.verify.text():<40}")
    out.append("storing the Nth run (one process):")
    for row in s3_rows:
        out.append(f"{row.runs:>6}  {row.write.text()}")
    out.append("local store, files opened and folders listed:")
    for row in local_rows:
        out.append(f"{row.runs:>6}  {row.cat.text():<40}{row.verify.text():<40}")
    kib, seconds = large
    out.append(
        f"cas cat of one object among 10 million indexed: peak RSS {kib / 1024:.1f} MiB, "
        f"{seconds:.2f} s"
    )
    return out


def main() -> None:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--runs", type=int, nargs="+", default=list(CHECKPOINTS))
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="casstore-scale-"))
    checkpoints = tuple(args.runs)
    s3_rows = run_s3(workdir / "s3", checkpoints)
    local_rows = run_local(workdir / "local", checkpoints)
    for line in lines(s3_rows, local_rows, run_large_index(workdir)):
        print(line, flush=True)


if __name__ == "__main__":
    main()
