"""gc: roots and grace, trash and restore, packs rewritten, and no loss under concurrency."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casstore.cli.main import run
from casstore.errors import ObjectNotFound
from casstore.format import layout
from casstore.format.digest import hash_bytes
from casstore.graph.verify import verify_closure
from casstore.maintenance.fsck import fsck
from casstore.maintenance.gc import collect
from casstore.store.objects import Store
from casstore.store.open import init_store, open_store
from tests.helpers import record_referencing


def _age(seconds: float) -> None:
    """Let everything stored so far become older than ``seconds`` (S3 times are whole
    seconds, so no backend is asked to fake them)."""
    time.sleep(seconds + 0.1)


def rng_bytes(seed: int, nth: int) -> bytes:
    """The ``nth`` 2 MiB drawn from ``random.Random(seed)``, as the test below draws them."""
    rng = random.Random(seed)
    return [rng.randbytes(2 << 20) for _ in range(nth + 1)][nth]


def test_gc_keeps_what_tags_reach_and_frees_the_rest(store: Store) -> None:
    rng = random.Random(3)
    live_big = store.put_bytes(rng.randbytes(2 << 20)).digest
    dead_big = store.put_bytes(rng.randbytes(2 << 20)).digest
    with store.batch() as batch:
        live_small = [batch.put_bytes(rng.randbytes(3000)) for _ in range(5)]
        dead_small = [batch.put_bytes(rng.randbytes(3000)) for _ in range(5)]
    root = record_referencing(store, live_big, *live_small)
    store.tag("keep", root)
    _age(1.0)

    dry = collect(store, grace=0, dry_run=True)
    assert dry.trashed == 1 + 5 and dry.packs_rewritten == 1
    assert store.has(dead_big) and all(store.has(d) for d in dead_small)

    first = collect(store, grace=0)
    assert first.roots == 1 and first.reachable == 1 + 1 + 5
    assert (first.trashed, first.packs_rewritten, first.deleted) == (6, 1, 0)
    # Trashed: no longer stored live (a writer stores them again), but still visible to
    # every read until the next gc deletes them.
    assert not store.stored(dead_big) and not any(store.stored(d) for d in dead_small)
    assert store.has(dead_big) and all(store.has(d) for d in dead_small)
    assert store.get_bytes(dead_big) == rng_bytes(3, 1)
    assert store.resolve(dead_big[7:20]) == dead_big
    assert verify_closure(store, root).status == "ok"

    time.sleep(1.1)
    second = collect(store, grace=0)
    assert second.deleted == 6 and second.deleted_bytes >= (2 << 20) + 5 * 3000
    with pytest.raises(ObjectNotFound):
        store.get_bytes(dead_big)
    assert not store.has(dead_big) and store.missing([dead_big]) == [dead_big]
    assert verify_closure(store, root).status == "ok"
    assert sorted(store.iter_digests()) == sorted({root, live_big, *live_small})
    assert list(store.backend.list(layout.TRASH)) == []


def test_young_objects_are_kept(store: Store) -> None:
    orphan = store.put_bytes(b"just written by someone about to tag it").digest
    result = collect(store, grace=3600)
    assert result.young == 1 and result.trashed == 0 and store.has(orphan)


def test_an_object_tagged_after_it_was_trashed_is_restored(store: Store) -> None:
    orphan = store.put_bytes(b"old and unreferenced" * 100).digest
    _age(1.0)
    assert collect(store, grace=0).trashed == 1
    assert not store.stored(orphan) and store.has(orphan)
    # A writer that had seen it present now tags a record referencing it.
    store.tag("late", record_referencing(store, orphan))
    time.sleep(1.1)
    result = collect(store, grace=0)
    assert result.restored == 1 and result.deleted == 0
    assert store.has(orphan) and store.get_bytes(orphan) == b"old and unreferenced" * 100
    assert list(store.backend.list(layout.TRASH)) == []


def test_gc_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, _ = init_store(str(tmp_path / "s"))
    store.put_bytes(b"orphan")
    old = time.time() - 7200
    for info in store.backend.list_detailed(layout.OBJECTS):
        os.utime(store.backend.root / info.key, (old, old))  # type: ignore[attr-defined]
    assert run(["--store", store.url, "gc", "--grace", "1h", "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trashed"] == 1
    assert store.has(hash_bytes(b"orphan"))
    assert run(["--store", store.url, "gc", "--grace", "1h"]) == 0
    assert "moved to the trash: 1 object " in capsys.readouterr().out
    assert run(["--store", store.url, "gc", "--grace", "soon"]) == 2
    assert run(["--store", store.url, "--read-only", "gc", "--grace", "0"]) == 1
    assert "read-only" in capsys.readouterr().err


WRITER = """
import random, sys, time
from casstore.format.manifest import Ref, RunManifest, encode
from casstore.store.open import open_store

store = open_store(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
for i in range(30):
    # Reuse old objects that gc may be trashing right now, add new ones, and tag a record
    # naming them all. The writer's contract: put what a record names just before the
    # tag (a present object costs nothing; a trashed one is stored again).
    reused = [old_object(n) for n in rng.sample(range(20), 3)]  # 20 to 39: never reused
    with store.batch() as batch:
        new = [batch.put_bytes(rng.randbytes(500)) for _ in range(3)]
    new.append(store.put_bytes(rng.randbytes(rng.choice([3000, 1_200_000]))).digest)
    started = time.monotonic()
    refs = [store.put_bytes(data).digest for data in reused] + new
    record = RunManifest(artifacts={f"r{j}": Ref(d, 0) for j, d in enumerate(refs)})
    store.tag(f"w{sys.argv[2]}-{i}", store.put_bytes(encode(record)).digest)
    if time.monotonic() - started > float(sys.argv[3]) / 2:
        # Stalled (a loaded machine) for a good part of the grace period between its
        # puts and its tag: outside the contract gc promises, so not held to it.
        print(f"late w{sys.argv[2]}-{i}", flush=True)
    time.sleep(rng.uniform(0, 0.05))
print("done", flush=True)
"""

OLD = """
def old_object(n):
    return bytes([n]) * (700 + n if n % 2 else 2000 + n)
"""

GC_LOOP = """
import sys, time
from casstore.maintenance.gc import collect
from casstore.store.open import open_store

deadline = time.time() + float(sys.argv[2])
runs = 0
while time.time() < deadline:
    collect(open_store(sys.argv[1]), grace=float(sys.argv[3]))
    runs += 1
print(runs, flush=True)
"""


def _old_object(n: int) -> bytes:
    namespace: dict[str, object] = {}
    exec(OLD, namespace)
    return namespace["old_object"](n)  # type: ignore[operator, no-any-return]


@pytest.mark.parametrize("store_url", ["local", "s3"], indirect=True)
def test_gc_and_merges_running_while_writers_put_and_tag_lose_nothing(store_url: str) -> None:
    store, _ = init_store(store_url)
    # Old, unreferenced objects that writers will find present and reference: loose and
    # packed, in several batches so that their pack indexes get merged too.
    old = [_old_object(n) for n in range(40)]
    for start in range(0, 40, 8):
        store.put_many([d for d in old[start : start + 8] if len(d) < 1000])
        for data in old[start : start + 8]:
            if len(data) >= 1000:
                store.put_bytes(data)
    grace = 2.0
    time.sleep(grace + 0.5)  # old now: gc may trash any of them from the start
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    gc = subprocess.Popen(
        [sys.executable, "-c", GC_LOOP, store.url, "8", str(grace)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", OLD + WRITER, store.url, str(n), str(grace)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(3)
    ]
    late: set[str] = set()
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        lines = out.split("\n")
        assert writer.returncode == 0 and "done" in lines, err
        late |= {line.split()[1] for line in lines if line.startswith("late ")}
    gc_out, _ = gc.communicate(timeout=300)
    assert gc.returncode == 0 and int(gc_out) >= 2
    # Every tag's closure is whole, role by role, before any further gc.
    fresh = open_store(store.url, cache=False)
    tags = fresh.tags()
    assert len(tags) == 3 * 30
    assert len(late) < len(tags) / 2, f"{len(late)} of {len(tags)} writes stalled"
    for name, digest in tags.items():
        if name in late:
            continue
        report = verify_closure(fresh, digest)
        assert report.status == "ok", (name, report.as_json())
        assert [r.role for r in report.roles][1:] == [f"artifact:r{j}" for j in range(7)]
    checked = fsck(fresh)
    assert not checked.corrupt and (late or not checked.missing)
    # Once the grace period has passed, what no writer referenced goes.
    from casstore.graph.closure import walk

    referenced = set(walk(fresh, list(tags.values())).order)
    for _ in range(2):
        time.sleep(grace + 0.5)
        final = collect(open_store(store.url, cache=False), grace=grace)
    fresh = open_store(store.url, cache=False)
    unreferenced = [hash_bytes(d) for d in old if hash_bytes(d) not in referenced]
    assert unreferenced and all(not fresh.has(d) for d in unreferenced)
    assert final.reachable == len(referenced)
    assert all(verify_closure(fresh, d).status == "ok" for n, d in tags.items() if n not in late)


def test_a_trashed_snapshot_tagged_late_is_whole_before_the_next_gc(
    store: Store, tmp_path: Path
) -> None:
    from casstore.graph.closure import walk
    from casstore.graph.transfer import transfer

    folder = tmp_path / "snapshot"
    folder.mkdir()
    for i in range(5):
        (folder / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    tree = store.put_tree(folder).digest
    _age(1.0)
    assert collect(store, grace=0).trashed == 6
    store.tag("late", tree)  # a writer that saw the tree present before gc moved it
    closure = walk(store, [tree])
    assert closure.missing == {} and len(closure.order) == 6
    assert verify_closure(store, tree).status == "ok"
    other, _ = init_store(str(tmp_path / "other"))
    transfer(store, other, [tree])
    assert verify_closure(other, tree).status == "ok"


def test_a_pack_that_rewrites_to_itself_is_kept(local_store: Store) -> None:
    # Found by tests/test_store_model.py: dropping only the empty object leaves the
    # very same pack bytes, so the "new" pack is the old one and must not be deleted.
    kept, _empty = local_store.put_many([b"\x00", b""])
    local_store.tag("kept", kept)
    result = collect(local_store, grace=0)
    assert result.packs_rewritten == 1 and result.trashed == 1
    assert local_store.get_bytes(kept) == b"\x00"
    assert open_store(local_store.url).get_bytes(kept) == b"\x00"


def test_a_put_that_finds_an_object_gc_then_takes_stores_it_again(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found present, then trashed and deleted by a gc before the put read its header:
    # the put stores it again rather than failing (seen with gc looping beside writers).
    data = b"taken by gc between two reads" * 200
    monkeypatch.setattr(local_store, "stored", lambda digest: True)
    info = local_store.put_bytes(data)
    monkeypatch.undo()
    assert info.digest == hash_bytes(data) and info.size == len(data)
    assert local_store.stored(info.digest) and local_store.get_bytes(info.digest) == data
