"""A shared bucket at scale: a cold command costs what it touches, not the store's history.

Runs are stored one fresh store view each, as separate processes would store them;
every request is counted by a proxy in front of a real S3 server (SeaweedFS).
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from casstore.format import layout
from casstore.format.digest import hash_bytes
from casstore.format.manifest import Ref, RunManifest, encode
from casstore.graph.verify import verify_closure
from casstore.store import compact
from casstore.store.objects import Store
from casstore.store.open import init_store, open_store
from casstore.trees.ingest import tree_digest
from tests.helpers import BUCKET, build_large_index, run_measured
from tests.s3_proxy import CountingProxy, counting_proxy
from tests.s3_server import S3Server

FILES = 20


def make_run(folder: Path, i: int) -> Path:
    """A small run's snapshot: files of its own, and one that every run shares."""
    root = folder / f"run{i}"
    (root / "src").mkdir(parents=True, exist_ok=True)
    for n in range(FILES):
        (root / "src" / f"f{n}.txt").write_text(f"run {i} file {n}\n" * (n + 1))
    (root / "shared.txt").write_text("the same in every run\n")
    return root


def store_run(url: str, folder: Path, i: int) -> tuple[str, str]:
    """Store run ``i`` as a new process would; returns (manifest digest, a file's digest)."""
    store = open_store(url, cache=False)
    root = make_run(folder, i)
    tree = store.put_tree(root)
    manifest = RunManifest(trajectory_id=f"run-{i}", initial_snapshot=Ref(tree.digest, tree.size))
    digest = store.put_bytes(encode(manifest)).digest
    file_digest = store.put_bytes((root / "src" / "f3.txt").read_bytes()).digest
    return digest, file_digest


@contextmanager
def through(proxy: CountingProxy) -> Iterator[None]:
    saved = os.environ.get("AWS_ENDPOINT_URL_S3")
    os.environ["AWS_ENDPOINT_URL_S3"] = proxy.url
    try:
        yield
    finally:
        if saved is not None:
            os.environ["AWS_ENDPOINT_URL_S3"] = saved


def cost(proxy: CountingProxy, action: Callable[[], object]) -> Counter[str]:
    proxy.reset()
    action()
    return Counter(proxy.counts)


def cold_cat(url: str, digest: str) -> Callable[[], object]:
    return lambda: open_store(url, cache=False).get_bytes(digest)


def cold_verify(url: str, digest: str) -> Callable[[], object]:
    def verify() -> None:
        assert verify_closure(open_store(url, cache=False), digest).status == "ok"

    return verify


@pytest.fixture
def small_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Levels small enough that tens of runs fill three of them."""
    monkeypatch.setattr(compact, "LEVEL_BASE", 64)


def test_cold_commands_cost_what_they_touch(
    s3_server: S3Server, tmp_path: Path, small_levels: None
) -> None:
    url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    init_store(url)
    with counting_proxy(s3_server.endpoint_url) as proxy, through(proxy):
        writes_first = cost(proxy, lambda: store_run(url, tmp_path, 0))
        first, first_file = store_run(url, tmp_path, 0)  # present already: the same digests
        cat_alone = cost(proxy, cold_cat(url, first_file))
        verify_alone = cost(proxy, cold_verify(url, first))
        for i in range(1, 59):
            store_run(url, tmp_path, i)
        writes_last = cost(proxy, lambda: store_run(url, tmp_path, 59))
        cat = cost(proxy, cold_cat(url, first_file))
        verify = cost(proxy, cold_verify(url, first))
        last_cat = cost(proxy, cold_cat(url, store_run(url, tmp_path, 59)[1]))
    store = open_store(url, cache=False)
    index_files = store.packs.listed()
    assert len(index_files) <= compact.COMPACT_AFTER - 1 + 4, index_files
    assert sum(f.merged is not None for f in index_files) >= 1
    # A cold cat: the marker, one listing, a few index files, the block.
    assert sum(cat.values()) <= 10, cat
    assert sum(last_cat.values()) <= 10, last_cat
    assert sum(verify.values()) <= 2 * sum(verify_alone.values()), (verify, verify_alone)
    # The 60th run costs what the first did, within a small constant.
    assert sum(writes_last.values()) <= sum(writes_first.values()) + 8, (
        writes_last,
        writes_first,
    )
    assert sum(cat_alone.values()) <= 5


def test_compaction_keeps_index_files_few_and_loses_nothing(
    local_store: Store, tmp_path: Path, small_levels: None
) -> None:
    stored = [store_run(local_store.url, tmp_path, i) for i in range(40)]
    fresh = open_store(local_store.url)
    files = fresh.packs.listed()
    assert len(files) <= compact.COMPACT_AFTER - 1 + 4
    levels = sorted(compact.level(f.entries) for f in files if f.merged is not None)
    assert len(levels) == len(set(levels))  # one merged index per level
    for manifest, file_digest in stored:
        assert verify_closure(fresh, manifest).status == "ok"
        assert hash_bytes(fresh.get_bytes(file_digest)) == file_digest
    for i in (0, 17, 39):
        tree = tree_digest(tmp_path / f"run{i}").digest
        assert fresh.has(tree)
    assert [k for k in fresh.backend.list(layout.INDEX) if "/m-" in k]


def test_one_object_among_millions_is_read_in_little_memory(tmp_path: Path) -> None:
    # Memory follows what is read, not how many objects the indexes name: the index is
    # searched where it lies (mapped), never loaded into a table.
    peaks = {}
    for count in (10_000, 2_000_000):
        store, _ = init_store(str(tmp_path / f"s{count}"))
        digest = build_large_index(store, count, b"the one object that is really stored")
        code, peaks[count] = run_measured(["--store", store.url, "cat", digest])
        assert code == 0
    assert peaks[2_000_000] < 200 << 10, peaks
    # 200 times the entries (an index of 112 MB): the peak grows by less than 20 MiB.
    assert peaks[2_000_000] - peaks[10_000] < 20 << 10, peaks
