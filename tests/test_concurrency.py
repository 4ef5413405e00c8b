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
        digest = store.put_bytes(data).digest
    else:
        digest = store.put_stream(io.BytesIO(data)).digest
    print(digest, flush=True)
"""


def test_writers_killed_at_random_moments_leave_only_good_objects(tmp_path: Path) -> None:
    store, _ = init_store(str(tmp_path / "store"))
    rng = random.Random(1234)
    returned: set[str] = set()
    for round_ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, store.url, str(round_)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        # Killed after a put returned (not after a time, which a loaded machine can
        # stretch past nothing), then a little later: inside the next put, somewhere.
        returned.add(proc.stdout.readline().strip())
        time.sleep(rng.uniform(0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        returned.update(out.splitlines()[:-1])  # the last line may be cut by the kill
        assert returned <= verify_all(store)  # every put that returned reads back


PAUSED_IN_PUBLISH = """
import io, os, sys, time
from casstore.backends.local import LocalBackend
from casstore.store.open import open_store

stop_at = int(sys.argv[2])
real = LocalBackend.publish

def publish(self, local_path, key):
    # Pause at the stop_at-th call into C (stat, chmod, rename, fsync...) made inside
    # publish, however deep: every step of publishing is a point to be killed at.
    calls = 0
    def profile(frame, event, arg):
        nonlocal calls
        if event == "c_call":
            calls += 1
            if calls == stop_at:
                sys.setprofile(None)
                print("paused", flush=True)
                time.sleep(3600)
    sys.setprofile(profile)
    try:
        return real(self, local_path, key)
    finally:
        sys.setprofile(None)

LocalBackend.publish = publish
print("done", open_store(sys.argv[1]).put_stream(io.BytesIO(os.urandom(3 << 20))).digest)
"""


def test_a_writer_killed_at_each_step_of_publish_leaves_nothing_or_the_whole_object(
    tmp_path: Path,
) -> None:
    store, _ = init_store(str(tmp_path / "store"))
    for stop_at in range(1, 200):
        proc = subprocess.Popen(
            [sys.executable, "-c", PAUSED_IN_PUBLISH, store.url, str(stop_at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Killed anywhere inside publish: an object is listed only when it is whole.
        published = verify_all(store)
        if line.startswith("done"):
            break
        assert line == "paused"
    assert stop_at > 3, "publish made too few calls to pause in"
    assert line.split()[1] in published  # the last writer, never paused, published its object
