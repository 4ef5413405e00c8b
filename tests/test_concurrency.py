"""Concurrent writers and writers killed mid-put never leave a bad object."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from casstore.format import layout
from casstore.format.digest import hash_bytes
from casstore.store.objects import Store
from casstore.store.open import init_store
from casstore.testing.store import payload


def verify_all(store: Store) -> set[str]:
    digests = set(store.iter_digests())
    for digest in digests:
        store.verify(digest)
    return digests


def test_four_processes_put_the_same_objects_at_once(tmp_path: Path) -> None:
    store, _ = init_store(str(tmp_path / "store"))
    files = []
    for i in range(24):
        size = random.Random(i).choice([0, 10, 5000, 1 << 20, (2 << 20) + 3])
        path = tmp_path / f"f{i}"
        path.write_bytes(payload(size, seed=i, compressible=i % 2 == 0))
        files.append(path)
    expected = {hash_bytes(p.read_bytes()) for p in files}
    cmd = [sys.executable, "-m", "casstore", "--store", store.url, "put", *map(str, files)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    assert len({out for out, _ in outputs}) == 1  # every writer printed the same digests
    assert verify_all(store) == expected
    assert list((tmp_path / "store" / layout.TMP).iterdir()) == []


WRITER = """
import io, random, sys
from casstore.store.open import open_store
store = open_store(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
print("ready", flush=True)
while True:
    size = rng.choice([10, 3000, 300_000, 3 << 20])
    data = rng.randbytes(size // 2) + bytes(size - size // 2)
    if rng.random() < 0.5:
        store.put_bytes(data)
    else:
        store.put_stream(io.BytesIO(data))
"""


def test_writers_killed_at_random_moments_leave_only_good_objects(tmp_path: Path) -> None:
    store, _ = init_store(str(tmp_path / "store"))
    rng = random.Random(1234)
    for round_ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, store.url, str(round_)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        verify_all(store)
    assert len(list(store.iter_digests())) > 0


SLOW_STREAM = """
import sys, time
from casstore.store.open import open_store

class Slow:
    def __init__(self):
        self.sent = 0
    def read(self, n=-1):
        if self.sent == 4:
            print("writing", flush=True)
        if self.sent >= 1000:
            return b""
        self.sent += 1
        time.sleep(0.01)
        return bytes([self.sent % 256]) * (1 << 20)

open_store(sys.argv[1]).put_stream(Slow())
"""


def test_writer_killed_mid_stream_publishes_nothing(tmp_path: Path) -> None:
    store, _ = init_store(str(tmp_path / "store"))
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_STREAM, store.url], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    staged = list((tmp_path / "store" / layout.TMP).iterdir())
    assert staged, "the writer should be staging a temp file by now"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(store.iter_digests()) == []
