"""Recorded runs survive and can be found: runs and gradings are roots, refs travel with
push and pull and never move silently, the trash is fully visible, gc says what it
would do, and one gc runs at a time."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from casstore.cli.main import run
from casstore.errors import RefExists
from casstore.maintenance.gc import collect
from casstore.maintenance.lease import Lease, LeaseHeld
from casstore.store.objects import Store
from casstore.store.open import init_store, open_store
from runner_hooks import record_grading
from tests.helpers import make_inputs, run_example


def _cas(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_recorded_run_survives_gc_here_and_where_it_is_pushed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = init_store(str(tmp_path / "store"))
    inputs = make_inputs(tmp_path / "inputs")
    done = run_example(
        tmp_path,
        inputs,
        tmp_path / "out" / "t.json",
        "--seed",
        "3",
        "--deterministic",
        trajectory_id="law-7",
        env={"CAS_STORE": store.url},
    )
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip().splitlines()[-1]
    assert store.refs("runs/*") == {"runs/law-7": digest}
    for _ in range(2):  # gc frees only after the grace period, so twice
        time.sleep(1.1)
        assert _cas(capsys, "--store", store.url, "gc", "--grace", "0s")[0] == 0
    assert _cas(capsys, "--store", store.url, "verify", digest)[0] == 0
    # Pushed with its ref, it is a root on the other side too.
    other, _ = init_store(str(tmp_path / "other"))
    code, out, _ = _cas(capsys, "--store", store.url, "push", "runs/law-7", "--to", other.url)
    assert code == 0 and f"{digest}  runs/law-7" in out
    assert other.refs() == {"runs/law-7": digest}
    for _ in range(2):
        time.sleep(1.1)
        assert _cas(capsys, "--store", other.url, "gc", "--grace", "0s")[0] == 0
    assert _cas(capsys, "--store", other.url, "verify", digest)[0] == 0
    # cas runs lists it, with its score once graded.
    grades = tmp_path / "grades.json"
    grades.write_text('{"score": 0.75}')
    record_grading(digest, grades=grades, score=0.75, store=store)
    code, out, _ = _cas(capsys, "--store", store.url, "runs", "--json")
    (listed,) = json.loads(out)
    assert (listed["ref"], listed["digest"], listed["score"]) == ("runs/law-7", digest, 0.75)
    assert listed["model"] == "fake/echo-1" and listed["trajectory_id"] == "law-7"
    assert list(store.refs("gradings/*")) == ["gradings/law-7"]
    assert json.loads(_cas(capsys, "--store", store.url, "runs", "--model", "x", "--json")[1]) == []


def test_a_repeated_trajectory_id_gets_its_own_ref(tmp_path: Path) -> None:
    store, _ = init_store(str(tmp_path / "store"))
    inputs = make_inputs(tmp_path / "inputs")
    digests = []
    for seed in ("1", "2"):
        done = run_example(
            tmp_path,
            inputs,
            tmp_path / seed / "t.json",
            "--seed",
            seed,
            trajectory_id="t",
            env={"CAS_STORE": store.url},
        )
        assert done.returncode == 0, done.stderr
        digests.append(done.stdout.strip().splitlines()[-1])
    assert store.refs("runs/*") == {"runs/t": digests[0], "runs/t-2": digests[1]}


def test_tags_never_move_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, _ = init_store(str(tmp_path / "store"))
    a, b = store.put_bytes(b"A").digest, store.put_bytes(b"B").digest
    assert _cas(capsys, "--store", store.url, "tag", "x", a)[0] == 0
    code, _, err = _cas(capsys, "--store", store.url, "tag", "x", b)
    assert code == 1 and "--force" in err and store.tag_target("x") == a
    assert _cas(capsys, "--store", store.url, "tag", "x", a)[0] == 0  # same target: fine
    code, _, err = _cas(capsys, "--store", store.url, "tag", "cafe0123", a)
    assert code == 2 and "digest prefix" in err and store.tags() == {"x": a}
    assert _cas(capsys, "--store", store.url, "tag", "--force", "x", b)[0] == 0
    assert store.tag_target("x") == b
    assert _cas(capsys, "--store", store.url, "tag", "team-a/law/run7", a)[0] == 0
    code, out, _ = _cas(capsys, "--store", store.url, "tags", "team-a/*")
    assert out == f"{a}  team-a/law/run7\n"


def test_refs_travel_and_conflicts_are_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, _ = init_store(str(tmp_path / "src"))
    dst, _ = init_store(str(tmp_path / "dst"))
    one, two = src.put_bytes(b"one").digest, src.put_bytes(b"two").digest
    src.claim_ref("runs", "a", one)
    src.claim_ref("runs", "b", two)
    dst.tag("keep", dst.put_bytes(b"theirs").digest)
    src.tag("keep", one)
    code, _, _ = _cas(capsys, "--store", dst.url, "pull", "--refs", "runs/*", "--from", src.url)
    assert code == 0 and dst.refs("runs/*") == {"runs/a": one, "runs/b": two}
    code, _, err = _cas(capsys, "--store", src.url, "push", "keep", "--to", dst.url)
    assert code == 1 and "tags/keep" in err and "left alone" in err
    assert dst.tag_target("keep") != one and dst.has(one)
    assert _cas(capsys, "--store", src.url, "push", "keep", "--to", dst.url, "--force")[0] == 0
    assert dst.tag_target("keep") == one


def test_the_trash_is_fully_visible_until_gc_deletes_it(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    orphan = store.put_bytes(b"unreferenced, soon in the trash" * 50).digest
    time.sleep(1.1)
    assert collect(store, grace=0).trashed == 1
    fresh = open_store(store.url, cache=False)
    assert not fresh.stored(orphan)  # writers store it again...
    # ...but every read finds it: has, prefixes, stat, cat, verify, ls.
    assert fresh.has(orphan) and fresh.missing([orphan]) == []
    assert fresh.resolve(orphan[7:20]) == orphan
    assert fresh.stat(orphan).size == len(b"unreferenced, soon in the trash" * 50)
    assert fresh.get_bytes(orphan).startswith(b"unreferenced")
    assert orphan in set(fresh.iter_digests())
    assert _cas(capsys, "--store", store.url, "has", orphan)[0] == 0
    assert _cas(capsys, "--store", store.url, "verify", orphan)[0] == 0
    time.sleep(1.1)
    assert collect(store, grace=0).deleted == 1
    # Gone for every read at once.
    gone = open_store(store.url, cache=False)
    assert not gone.has(orphan) and orphan not in set(gone.iter_digests())
    code, _, err = _cas(capsys, "--store", store.url, "stat", orphan)
    assert code == 3 and orphan in err and "objects/" not in err
    assert _cas(capsys, "--store", store.url, "has", orphan)[0] == 3


def test_gc_dry_run_lists_what_it_would_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = init_store(str(tmp_path / "store"))
    folder = tmp_path / "snap"
    folder.mkdir()
    (folder / "big.bin").write_bytes(bytes(range(256)) * (40_000))  # chunked: 10 MB
    (folder / "small.txt").write_text("small\n")
    tree = store.put_tree(folder).digest
    blob = store.put_bytes(b"a blob" * 100).digest
    time.sleep(1.1)
    out = _cas(capsys, "--store", store.url, "gc", "--grace", "0s", "--dry-run", "--json")[1]
    plan = {item["digest"]: item for item in json.loads(out)["items"]}
    assert plan[tree]["kind"] == "tree" and plan[blob]["kind"] == "blob"
    assert {item["kind"] for item in plan.values()} >= {"tree", "blob", "chunked file", "chunk"}
    assert all(item["action"] == "trash" and item["age"] >= 1 for item in plan.values())
    out = _cas(capsys, "--store", store.url, "gc", "--grace", "0s", "--dry-run")[1]
    assert f"trash    {tree}  tree" in out and "would be moved to the trash" in out
    assert store.has(tree) and store.stored(blob)  # a dry run changes nothing


def test_one_gc_at_a_time(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    first = Lease(store)
    first.acquire()
    with pytest.raises(LeaseHeld, match="another gc is running"):
        collect(store, grace=0)
    assert collect(store, grace=0, dry_run=True).dry_run  # a dry run needs no lease
    first.release()
    assert collect(store, grace=0).roots == 0
    # A lease left by a gc that died expires; --break-lease removes it at once.
    Lease(store).acquire()
    code, _, err = _cas(capsys, "--store", store.url, "gc")
    assert code == 1 and "--break-lease" in err
    assert _cas(capsys, "--store", store.url, "gc", "--break-lease")[0] == 0
    assert _cas(capsys, "--store", store.url, "gc")[0] == 0
    expired = Lease(store, duration=-1)
    expired.acquire()
    assert collect(store, grace=0).roots == 0  # taken over


def test_a_namespace_and_a_name_cannot_clash(local_store: Store) -> None:
    digest = local_store.put_bytes(b"x").digest
    local_store.tag("team/run", digest)
    with pytest.raises(RefExists):
        local_store.tag("team", digest)
