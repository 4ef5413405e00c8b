"""push/pull: closures, only what is missing, verified, records last; the read-through cache."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from casstore.config import CacheSection, Config, ConfigFile
from casstore.errors import IntegrityError, ObjectNotFound
from casstore.format import layout
from casstore.format.digest import hash_bytes
from casstore.format.packindex import MAX_PACKED_SIZE
from casstore.graph.closure import walk
from casstore.graph.transfer import transfer
from casstore.maintenance.gc import collect
from casstore.store.objects import Store
from casstore.store.open import init_store, open_store
from casstore.store.refs import target
from casstore.testing.store import corrupt, payload
from tests.helpers import run_cas


def record(kind: str, **fields: object) -> bytes:
    return json.dumps({"casstore": kind, **fields}, separators=(",", ":")).encode()


def make_run(store: Store, seed: int = 0, extra: bytes = b"") -> tuple[str, set[str]]:
    """A manifest-like record -> a tree record -> blobs, plus a config blob; ``extra``
    adds one more file to the tree."""
    blobs = [store.put_bytes(payload(size, seed=seed + i)) for i, size in enumerate([10, 5000])]
    if extra:
        blobs.append(store.put_bytes(extra))
    big = store.put_bytes(payload(3 << 20, seed=seed, compressible=True))
    entries = [
        {"path": f"f{i}", "type": "file", "size": b.size, "digest": b.digest}
        for i, b in enumerate([*blobs, big])
    ]
    tree = store.put_bytes(record("tree/1", entries=entries))
    config = store.put_bytes(b'{"max_steps": 5}')
    run = store.put_bytes(
        record(
            "test-run/1",
            snapshot={"digest": tree.digest, "size": tree.size},
            config={"digest": config.digest, "size": config.size},
        )
    )
    return run.digest, {run.digest, tree.digest, config.digest, big.digest} | {
        b.digest for b in blobs
    }


@pytest.fixture
def other(tmp_path: Path) -> Store:
    return init_store(str(tmp_path / "other"))[0]


def test_closure_lists_records_after_their_references(store: Store) -> None:
    run, expected = make_run(store)
    closure = walk(store, [run])
    assert set(closure.order) == expected
    assert closure.order[-1] == run
    tree = next(d for d, kind in closure.kinds.items() if kind == "tree/1")
    assert closure.order.index(tree) < closure.order.index(run)
    assert closure.missing == {}


def test_push_sends_only_what_is_missing(store: Store, other: Store) -> None:
    run, expected = make_run(store)
    first = transfer(store, other, [run])
    assert (first.copied, first.present) == (len(expected), 0)
    assert set(other.iter_digests()) == expected
    assert first.copied_digests[-1] == run  # the record is published last
    again = transfer(store, other, [run])
    assert (again.copied, again.copied_bytes, again.present) == (0, 0, len(expected))
    # A second run sharing the snapshot blobs sends only its new objects: the new
    # file, its tree and its record.
    run2, expected2 = make_run(store, seed=0, extra=b"a file only the second run has")
    new = expected2 - expected
    assert len(new) == 3 and run2 in new
    second = transfer(store, other, [run2])
    assert (second.copied, second.present) == (3, len(expected2) - 3)
    assert set(second.copied_digests) == new and second.copied_digests[-1] == run2
    assert set(other.iter_digests()) == expected | expected2


def test_pull_in_the_other_direction(store: Store, other: Store) -> None:
    run, expected = make_run(other, seed=9)
    result = transfer(other, store, [run])
    assert result.copied == len(expected)
    assert set(store.iter_digests()) == expected
    for digest in expected:
        store.verify(digest)


def test_incomplete_closure_is_refused_before_anything_is_sent(store: Store, other: Store) -> None:
    run, _ = make_run(store)
    tree = next(d for d, kind in walk(store, [run]).kinds.items() if kind == "tree/1")
    blob = json.loads(store.get_bytes(tree))["entries"][0]["digest"]
    store.delete(blob)
    with pytest.raises(ObjectNotFound, match=f"referenced by {tree}") as refused:
        transfer(store, other, [run])
    assert f"is missing from {store.url}" in str(refused.value)
    assert list(other.iter_digests()) == []


def test_corrupt_source_object_is_never_published(store: Store, other: Store) -> None:
    run, expected = make_run(store)
    config = next(d for d in expected if store.get_bytes(d) == b'{"max_steps": 5}')
    corrupt(store, config, "flip")
    with pytest.raises(IntegrityError):
        transfer(store, other, [run], concurrency=1)
    assert config not in set(other.iter_digests())
    assert run not in set(other.iter_digests())  # records wait for their references


def test_refs_travel_after_their_closure_and_never_move_silently(
    store: Store, other: Store
) -> None:
    run, expected = make_run(store)
    run2, _ = make_run(store, seed=5)
    plans: list[int] = []
    sizes: list[int] = []
    result = transfer(
        store, other, [], refs={"runs/t1": run}, on_plan=plans.append, on_object=sizes.append
    )
    assert result.roots == [run] and result.refs == {"runs/t1": run} and not result.conflicts
    assert target(other, "runs/t1") == run
    assert plans == [len(expected)] and len(sizes) == result.copied == len(expected)
    assert sum(sizes) == result.copied_bytes == sum(store.stat(d).size for d in expected)
    # Small objects go into packs; records and large objects are published on their own.
    kinds = walk(store, [run]).kinds
    for digest in expected:
        packed = other.stat(digest).encoding == "packed"
        small = store.stat(digest).size <= MAX_PACKED_SIZE
        assert packed == (small and digest not in kinds), (digest, kinds.get(digest))
    # The same ref naming another run is reported and left alone, unless forced.
    moved = transfer(store, other, [], refs={"runs/t1": run2, "runs/t2": run2})
    assert moved.conflicts == {"runs/t1": run} and moved.refs == {"runs/t2": run2}
    assert target(other, "runs/t1") == run
    forced = transfer(store, other, [], refs={"runs/t1": run2}, force_refs=True)
    assert forced.refs == {"runs/t1": run2} and not forced.conflicts
    assert target(other, "runs/t1") == run2


def test_push_keeps_chunks_and_copies_again_what_gc_trashed(store: Store, other: Store) -> None:
    data = payload(9 << 20, seed=3)
    with store.batch() as batch:  # files of 8 MiB and more in a batch are chunked
        big = batch.put_stream(io.BytesIO(data), size=len(data))
    assert store.chunk_list(big) is not None
    loose = store.put_bytes(payload(2 << 20, seed=4)).digest  # too large for a pack
    exact = store.put_bytes(payload(MAX_PACKED_SIZE, seed=5)).digest  # the largest packed
    other.put_bytes(store.get_bytes(loose))
    collect(other, grace=0)  # unreferenced there: in the trash, where gc deletes it next
    assert other.missing([loose], live=True) == [loose]
    result = transfer(store, other, [big, loose, exact])
    assert {big, loose, exact} <= set(result.copied_digests)
    assert other.missing([loose], live=True) == []
    assert other.chunk_list(big) == store.chunk_list(big)
    assert other.get_bytes(big) == data
    assert other.stat(exact).encoding == "packed"


def test_absent_ok_takes_what_the_destination_already_has(
    store: Store, other: Store, tmp_path: Path
) -> None:
    run, _ = make_run(store)
    config = hash_bytes(b'{"max_steps": 5}')
    other.put_bytes(store.get_bytes(config))
    store.delete(config)  # a spool: its store already took this one
    with pytest.raises(ObjectNotFound):
        transfer(store, other, [run])
    result = transfer(store, other, [run], absent_ok=True)
    assert run in result.copied_digests and config not in result.copied_digests
    other.verify(run)
    # In the destination's trash is not there: gc deletes it next.
    trashed = init_store(str(tmp_path / "trashed"))[0]
    trashed.put_bytes(b'{"max_steps": 5}')
    collect(trashed, grace=0)
    with pytest.raises(ObjectNotFound):
        transfer(store, trashed, [run], absent_ok=True)
    lost = walk(store, [run]).order[0]  # one the destination lacks too
    third = init_store(str(tmp_path / "third"))[0]
    store.delete(lost)
    with pytest.raises(ObjectNotFound):
        transfer(store, third, [run], absent_ok=True)
    assert list(third.iter_digests()) == []


def test_cli_push_pull_summary_and_json(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert run_cas("init", cwd=home).returncode == 0
    assert run_cas("--store", str(tmp_path / "remote"), "init").returncode == 0
    with open(home / "store.toml", "a") as f:
        f.write(f'\n[remotes.team]\nurl = "{tmp_path / "remote"}"\n')
    (home / "a").write_bytes(b"alpha")
    (home / "b").write_bytes(payload(100_000))
    digests = run_cas("put", "a", "b", cwd=home).stdout.decode().split()[::2]
    result = run_cas("push", *digests, "--to", "team", cwd=home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith("pushed 2 objects (")
    assert result.stdout.decode().endswith(", 0 already present\n")
    result = run_cas("push", "--json", *digests, "--to", "team", cwd=home)
    summary = json.loads(result.stdout)
    assert (summary["copied"], summary["bytes"], summary["present"]) == (0, 0, 2)
    result = run_cas("push", digests[0], "--to", "nowhere", cwd=home)
    assert result.returncode == 1 and "no remote named 'nowhere'" in result.stderr.decode()

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert run_cas("init", cwd=fresh).returncode == 0
    result = run_cas("pull", digests[1], "--from", str(tmp_path / "remote"), cwd=fresh)
    assert result.stdout.decode().startswith("pulled 1 object (")
    assert run_cas("cat", digests[1], cwd=fresh).stdout == payload(100_000)


def cached_store(url: str, cache_dir: Path, max_size: str = "1GiB") -> Store:
    config = Config(file=ConfigFile(cache=CacheSection(dir=str(cache_dir), max_size=max_size)))
    return open_store(url, config=config)


def test_read_through_cache(store_url: str, tmp_path: Path) -> None:
    remote, _ = init_store(store_url)
    data = payload(200_000, compressible=True)
    digest = remote.put_bytes(data).digest
    store = cached_store(store_url, tmp_path / "cache")
    if store.cache is None:
        pytest.skip("local stores are not cached")
    assert store.get_bytes(digest) == data
    remote.backend.delete(layout.object_key(digest))
    assert store.get_bytes(digest) == data  # served by the cache now
    with pytest.raises(ObjectNotFound):
        store.verify(digest)  # verify checks the store itself, never the cache
    corrupt(store.cache.store, digest, "flip")
    with pytest.raises(IntegrityError):
        store.get_bytes(digest)


def test_cache_evicts_least_recently_used(store_url: str, tmp_path: Path) -> None:
    remote, _ = init_store(store_url)
    digests = [remote.put_bytes(payload(100_000, seed=i)).digest for i in range(6)]
    store = cached_store(store_url, tmp_path / "cache", max_size="350kB")
    if store.cache is None:
        pytest.skip("local stores are not cached")
    for digest in digests:
        store.get_bytes(digest)
    cached = set(store.cache.store.iter_digests())
    assert digests[-1] in cached and digests[0] not in cached
    assert 1 <= len(cached) <= 3
