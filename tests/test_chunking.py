"""Large files in snapshots are stored as content-defined chunks; digests do not change."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from blake3 import blake3

from casstore.errors import IntegrityError
from casstore.format import layout
from casstore.format import objects as objectfile
from casstore.format.tree import decode as tree_entries
from casstore.graph.bundle import read_bundle, write_bundle_file
from casstore.graph.closure import walk
from casstore.graph.transfer import transfer
from casstore.graph.verify import verify_closure
from casstore.maintenance.fsck import fsck
from casstore.maintenance.gc import collect
from casstore.store.batch import CHUNKED_MIN
from casstore.store.objects import Store
from casstore.store.open import init_store
from tests.helpers import flip_stored_byte, run_cas

SIZE = CHUNKED_MIN + (4 << 20)


def _database(seed: int = 7) -> bytearray:
    rng = random.Random(seed)
    return bytearray(rng.randbytes(SIZE // 2) + bytes(SIZE // 2))


def _snapshot(folder: Path, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "db.sqlite").write_bytes(data)
    (folder / "small.txt").write_text("small files are never chunked\n")
    return folder


def _stored_bytes(store: Store) -> int:
    return sum(info.size for info in store.backend.list_detailed(""))


def test_golden_chunk_list() -> None:
    chunks = [("blake3:" + "11" * 32, 5), ("blake3:" + "22" * 32, 7)]
    data = objectfile.encode_chunk_list(chunks)
    assert data == (
        objectfile.pack_header(objectfile.CHUNKED, 12)
        + bytes.fromhex("11" * 32)
        + (5).to_bytes(8, "little")
        + bytes.fromhex("22" * 32)
        + (7).to_bytes(8, "little")
    )
    assert objectfile.decode_chunk_list(data[objectfile.HEADER_SIZE :], 12, "x") == chunks
    with pytest.raises(IntegrityError, match="does not add up"):
        objectfile.decode_chunk_list(data[objectfile.HEADER_SIZE :], 13, "x")
    with pytest.raises(IntegrityError, match="malformed"):
        objectfile.decode_chunk_list(data[objectfile.HEADER_SIZE : -1], 12, "x")


def test_a_large_file_edited_in_the_middle_costs_about_the_edit(
    store: Store, tmp_path: Path
) -> None:
    data = _database()
    initial = store.put_tree(_snapshot(tmp_path / "initial", bytes(data)))
    digest = "blake3:" + blake3(data).hexdigest()  # the digest is of the whole content
    info = store.stat(digest)
    assert info.encoding == "chunked" and info.size == SIZE
    assert store.get_bytes(digest) == data
    assert len(store.chunk_list(digest) or []) >= 4
    before = _stored_bytes(store)
    data[SIZE // 3 : SIZE // 3 + 4096] = random.Random(1).randbytes(4096)
    final = store.put_tree(_snapshot(tmp_path / "final", bytes(data)))
    increment = _stored_bytes(store) - before
    assert increment < 5 << 20, increment  # not the 12 MiB file again
    store.get_tree(final.digest, tmp_path / "out")
    assert (tmp_path / "out" / "db.sqlite").read_bytes() == data
    assert initial.digest != final.digest


def test_chunks_are_in_the_closure_and_travel(store: Store, tmp_path: Path) -> None:
    tree = store.put_tree(_snapshot(tmp_path / "s", bytes(_database()))).digest
    digest = "blake3:" + blake3(_database()).hexdigest()
    chunks = [d for d, _ in store.chunk_list(digest) or []]
    order = walk(store, [tree]).order
    assert set(chunks) <= set(order)
    assert order.index(digest) > max(order.index(c) for c in chunks)
    other, _ = init_store(str(tmp_path / "other"))
    transfer(store, other, [tree])
    assert other.stat(digest).encoding == "chunked"
    assert other.get_bytes(digest) == _database()
    assert verify_closure(other, tree).status == "ok"


def test_damaged_or_missing_chunks_are_errors_never_wrong_bytes(
    local_store: Store, tmp_path: Path
) -> None:
    tree = local_store.put_tree(_snapshot(tmp_path / "s", bytes(_database()))).digest
    digest = "blake3:" + blake3(_database()).hexdigest()
    chunks = [d for d, _ in local_store.chunk_list(digest) or []]
    saved = local_store.backend.read_bytes(layout.object_key(chunks[2]))
    local_store.backend.delete(layout.object_key(chunks[2]))
    with pytest.raises(IntegrityError, match=f"its chunk {chunks[2]} is missing"):
        local_store.get_bytes(digest)
    assert verify_closure(local_store, tree).roles[0].missing == [chunks[2]]
    found = fsck(local_store, quarantine=False)
    assert found.missing == {digest: [chunks[2]]} and not found.corrupt
    local_store.backend.write_bytes(layout.object_key(chunks[2]), saved)
    flip_stored_byte(local_store, chunks[1])
    with pytest.raises(IntegrityError, match=f"{chunks[1]}: content hashes to"):
        local_store.get_bytes(digest)
    report = verify_closure(local_store, tree)
    assert report.status == "corrupt" and chunks[1] in report.roles[0].corrupt


def test_gc_keeps_the_chunks_of_what_is_reachable(local_store: Store, tmp_path: Path) -> None:
    import time

    kept = local_store.put_tree(_snapshot(tmp_path / "a", bytes(_database(1)))).digest
    local_store.put_tree(_snapshot(tmp_path / "b", bytes(_database(2))))
    local_store.tag("kept", kept)
    time.sleep(1.1)
    collect(local_store, grace=0)
    time.sleep(1.1)
    result = collect(local_store, grace=0)
    assert result.deleted > 0  # the second run empties the trash of the first
    assert verify_closure(local_store, kept).status == "ok"
    remaining = set(local_store.iter_digests())
    assert remaining == set(walk(local_store, [kept]).order)


def test_a_closure_with_a_chunked_file_bundles_and_unbundles(
    local_store: Store, tmp_path: Path
) -> None:
    # The reproduction: a chunked reader's short reads broke the bundle writer.
    data = bytes(_database())
    tree = local_store.put_tree(_snapshot(tmp_path / "snap", data)).digest
    assert any(local_store.chunk_list(d) for d in walk(local_store, [tree]).order)
    bundle = tmp_path / "x.casb"
    write_bundle_file(local_store, [tree], bundle)
    other, _ = init_store(str(tmp_path / "other"))
    assert read_bundle(other, bundle).roots == [tree]
    assert verify_closure(other, tree).status == "ok"
    entries = tree_entries(other.get_bytes(tree))
    big = next(e for e in entries if e.size == len(data))
    assert other.get_bytes(big.digest) == data
    other.get_tree(tree, tmp_path / "out")
    assert (tmp_path / "out" / big.path).read_bytes() == data


@pytest.mark.parametrize("fmt", ["tar", "zip", "tar.gz", "tar.zst"])
def test_an_archive_of_a_chunked_file_holds_it_whole_and_checked(
    fmt: str, local_store: Store, tmp_path: Path
) -> None:
    """Archives read a large file as its chunks, beside the small files: the archive
    gives the tree back; chunks listed in another order (each sound, the whole not
    the file) stop it, and no archive is left."""
    from casstore.trees.ingest import tree_digest

    tree = local_store.put_tree(_snapshot(tmp_path / "s", bytes(_database()))).digest
    out = tmp_path / f"out.{fmt}"
    local_store.get_tree(tree, out)
    assert tree_digest(out).digest == tree
    digest = "blake3:" + blake3(_database()).hexdigest()
    chunks = local_store.chunk_list(digest) or []
    assert len(chunks) > 2
    swapped = [chunks[1], chunks[0], *chunks[2:]]
    local_store.backend.write_bytes(
        layout.object_key(digest), objectfile.encode_chunk_list(swapped)
    )
    again = tmp_path / f"again.{fmt}"
    with pytest.raises(IntegrityError, match="its chunks hash to something else"):
        local_store.get_tree(tree, again)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out.{fmt}", "s", "store"]


@pytest.mark.parametrize("out", ["x.tar", "x.zip", "folder"])
def test_a_chunk_list_naming_a_missing_chunk_is_corrupt_in_every_format(
    out: str, local_store: Store, tmp_path: Path
) -> None:
    """Whatever the output, a chunk that the list names and the store lacks is the file's
    damage (as verify and fsck say), not an object the user asked for that is absent."""
    from casstore.errors import ChunkMissing

    tree = local_store.put_tree(_snapshot(tmp_path / "s", bytes(_database()))).digest
    digest = "blake3:" + blake3(_database()).hexdigest()
    chunks = local_store.chunk_list(digest) or []
    absent = "blake3:" + "ab" * 32
    local_store.backend.write_bytes(
        layout.object_key(digest),
        objectfile.encode_chunk_list([chunks[0], (absent, chunks[1][1]), *chunks[2:]]),
    )
    with pytest.raises(ChunkMissing, match=f"{digest}: its chunk {absent} is missing"):
        local_store.get_tree(tree, tmp_path / out)
    assert not (tmp_path / out).exists()


@pytest.mark.parametrize("out", ["folder", "x.tar", "x.zip", "-"])
def test_a_damaged_chunk_is_named_by_its_file_whatever_the_output(
    out: str, local_store: Store, tmp_path: Path
) -> None:
    tree = local_store.put_tree(_snapshot(tmp_path / "s", bytes(_database()))).digest
    digest = "blake3:" + blake3(_database()).hexdigest()
    chunks = [d for d, _ in local_store.chunk_list(digest) or []]
    flip_stored_byte(local_store, chunks[1])
    where = ["--format", "tar"] if out == "-" else ["-o", str(tmp_path / out)]
    got = run_cas("--store", str(tmp_path / "store"), "get", tree, *where)
    assert got.returncode == 4
    assert got.stderr.decode().startswith(f"cas: 'db.sqlite': {chunks[1]}: "), got.stderr
