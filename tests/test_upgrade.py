"""Stores written in format 1 (a pack index per batch, nothing merged) open and read as
before, and ``cas upgrade`` converts them in place: idempotent, and safe to rerun after
an interruption."""

from __future__ import annotations

import json

import pytest

from casstore.cli.main import run
from casstore.errors import BackendError
from casstore.format import layout
from casstore.format.digest import hash_bytes
from casstore.store import marker
from casstore.store.objects import Store
from casstore.store.open import open_store
from casstore.store.upgrade import upgrade


def make_format1(store: Store) -> list[str]:
    """What casstore wrote before format 2: marker 1, pack indexes that nobody merges,
    a loose object, and a trash batch without a seal."""
    marker.write_marker(store.backend, 1)
    store.format_version = 1
    digests = []
    for batch in range(6):
        digests += store.put_many([f"batch {batch} object {i}".encode() for i in range(5)])
    digests.append(store.put_bytes(b"a loose object" * 1000).digest)
    store.backend.write_bytes(
        layout.trash_key("1700000000-abcd", layout.object_key("blake3:" + "ab" * 32)), b"x"
    )
    return digests


def test_a_format1_store_reads_as_before_and_says_how_to_upgrade(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    digests = make_format1(store)
    old = open_store(store.url, cache=False)
    assert old.format_version == 1
    assert len(old.packs.listed()) == 6 and all(f.pack for f in old.packs.listed())
    assert all(hash_bytes(old.get_bytes(d)) == d for d in digests)
    old.put_many([b"written by a format-2 casstore, later"] * 1)
    for _ in range(4):
        old.put_many([b"more %d" % _])
    # Writers never merge a format-1 store: format-1 readers would miss merged entries.
    assert all(f.pack for f in open_store(store.url, cache=False).packs.listed())
    assert run(["--store", store.url, "has", digests[0]]) == 0
    assert "cas upgrade" in capsys.readouterr().err


def test_upgrade_converts_in_place_and_is_idempotent(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    digests = make_format1(store)
    assert run(["--store", store.url, "upgrade", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["from"], report["to"], report["index_files"]) == (1, 2, [6, 1])
    fresh = open_store(store.url, cache=False)
    assert fresh.format_version == 2
    assert [f.merged for f in fresh.packs.listed()] == [30]
    assert all(hash_bytes(fresh.get_bytes(d)) == d for d in digests)
    assert any(k.endswith("/sealed") for k in fresh.backend.list(layout.TRASH))
    assert run(["--store", store.url, "upgrade"]) == 0
    assert "already" in capsys.readouterr().out
    assert len(open_store(store.url, cache=False).packs.listed()) == 1


def test_an_interrupted_upgrade_is_finished_by_a_rerun(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests = make_format1(store)
    backend = type(store.backend)

    def interrupted(self: object, keys: object) -> None:
        raise BackendError("the connection dropped")

    with monkeypatch.context() as patch:
        # The merged index is published, then deleting its inputs fails.
        patch.setattr(backend, "delete_many", interrupted)
        with pytest.raises(BackendError):
            upgrade(open_store(store.url, cache=False))
    halfway = open_store(store.url, cache=False)
    assert halfway.format_version == 2
    assert len(halfway.packs.listed()) == 7  # the six inputs and the merge, both readable
    assert all(hash_bytes(halfway.get_bytes(d)) == d for d in digests)
    assert upgrade(halfway) == 2
    done = open_store(store.url, cache=False)
    assert len(done.packs.listed()) == 1
    assert all(hash_bytes(done.get_bytes(d)) == d for d in digests)
