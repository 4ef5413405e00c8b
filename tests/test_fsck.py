"""fsck: every object re-hashed, corrupt ones quarantined, references to missing objects
reported."""

from __future__ import annotations

import json
import random

import pytest

from casstore.cli.main import run
from casstore.format import layout
from casstore.maintenance.fsck import fsck
from casstore.store.objects import Store
from tests.helpers import flip_stored_byte, record_referencing


def test_clean_store(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(1)
    big = store.put_bytes(rng.randbytes(1 << 20) + bytes(1 << 20)).digest
    with store.batch() as batch:
        small = [batch.put_bytes(rng.randbytes(900)) for _ in range(10)]
    root = record_referencing(store, big, *small)
    result = fsck(store)
    assert (result.total, result.checked) == (12, 12)
    assert not result.corrupt and not result.missing and not result.quarantined
    assert run(["--store", store.url, "fsck"]) == 0
    assert "no problems found" in capsys.readouterr().out
    assert root in set(store.iter_digests())  # the record was checked with what it names


def test_corrupt_objects_are_quarantined_and_their_referrers_reported(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(2)
    loose = store.put_bytes(rng.randbytes(3 << 20)).digest
    contents = [rng.randbytes(1000) for _ in range(9)]
    with store.batch() as batch:
        packed = [batch.put_bytes(data) for data in contents[:6]]
    with store.batch() as batch:  # another pack, untouched
        other = [batch.put_bytes(data) for data in contents[6:]]
    root = record_referencing(store, loose, packed[0], other[0])
    flip_stored_byte(store, loose)
    flip_stored_byte(store, packed[2])  # damages the whole compressed block

    assert run(["--store", store.url, "fsck", "--json"]) == 4
    result = json.loads(capsys.readouterr().out)
    corrupt = set(result["corrupt"])
    assert loose in corrupt and len(corrupt) >= 2 and corrupt <= {loose, *packed}
    assert layout.quarantine_key(layout.object_key(loose)) in result["quarantined"]
    assert any(key.startswith("quarantine/packs/") for key in result["quarantined"])
    assert result["missing"] == {root: [d for d in (loose, packed[0]) if d in corrupt]}
    # Quarantined, not deleted; the good objects of the damaged pack were kept.
    assert store.backend.exists(layout.quarantine_key(layout.object_key(loose)))
    assert not store.has(loose)
    content_of = dict(zip(packed + other, contents, strict=True))
    for digest in other + [d for d in packed if d not in corrupt]:
        assert store.get_bytes(digest) == content_of[digest]
    assert run(["--store", store.url, "fsck"]) == 3  # now only references to missing objects
    assert "missing" in capsys.readouterr().out


def test_fsck_sample_and_read_only(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    digests = store.put_many(bytes([i]) * 100 for i in range(40))
    assert fsck(store, sample_percent=10, seed=1).checked == 4
    flip_stored_byte(store, digests[0])
    assert run(["--store", store.url, "--read-only", "fsck", "--json"]) == 4
    assert json.loads(capsys.readouterr().out)["quarantined"] == []
    assert run(["--store", store.url, "fsck", "--sample", "0"]) == 2
