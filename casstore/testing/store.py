"""The store contract as a test suite: subclass :class:`StoreTests` and give it a
``store_url`` fixture (a fresh, empty location) to check a store on a new backend.

:func:`payload` and :func:`corrupt` make content and damage it, for other suites.
"""

from __future__ import annotations

import contextlib
import io
import random
from pathlib import Path

import pytest

from casstore.errors import (
    CasError,
    IntegrityError,
    InvalidDigest,
    InvalidRefName,
    NotAStore,
    ObjectNotFound,
    RefExists,
)
from casstore.format import layout
from casstore.format.digest import hash_bytes
from casstore.format.objects import HEADER_SIZE, IO_SIZE
from casstore.store.objects import Store
from casstore.store.open import init_store, open_store


def payload(size: int, seed: int = 0, compressible: bool = False) -> bytes:
    rng = random.Random(seed)
    if compressible:
        words = [bytes(rng.choice(b"abcdefgh ") for _ in range(8)) for _ in range(64)]
        out = b"".join(rng.choice(words) for _ in range(size // 8 + 1))
        return out[:size]
    return rng.randbytes(size)


def corrupt(store: Store, digest: str, how: str) -> None:
    """Damage the stored object in place, the way a disk or a bad copy would."""
    key = layout.object_key(digest)
    stored = bytearray(store.backend.read_bytes(key))
    if how == "flip":
        stored[-1] ^= 0x01
    elif how == "truncate":
        del stored[-max(1, (len(stored) - HEADER_SIZE) // 2) :]
    elif how == "header":
        stored[0:4] = b"XXXX"
    elif how == "extend":
        stored += b"trailing"
    store.backend.write_bytes(key, bytes(stored))


class StoreTests:
    """Tests every store must pass, whatever its backend."""

    @pytest.fixture
    def store(self, store_url: str) -> Store:
        created, _ = init_store(store_url)
        return created

    def test_put_get_bytes_roundtrip(self, store: Store) -> None:
        for size in (0, 1, 100, 70_000):
            data = payload(size, seed=size)
            info = store.put_bytes(data)
            assert info.digest == hash_bytes(data)
            assert info.size == size
            assert store.get_bytes(info.digest) == data

    def test_put_stream_and_file(self, store: Store, tmp_path: Path) -> None:
        data = payload(3 * IO_SIZE + 17, compressible=True)
        info = store.put_stream(io.BytesIO(data))
        assert info.digest == hash_bytes(data)
        assert info.encoding == "zstd"
        assert info.stored_size < info.size
        path = tmp_path / "f"
        path.write_bytes(data)
        assert store.put_file(path) == info
        out = tmp_path / "out"
        assert store.get_file(info.digest, out) == len(data)
        assert out.read_bytes() == data

    def test_incompressible_is_stored_raw(self, store: Store) -> None:
        data = payload(2 * IO_SIZE)
        info = store.put_stream(io.BytesIO(data))
        assert info.encoding == "raw"
        assert info.stored_size == len(data) + HEADER_SIZE
        assert store.stat(info.digest) == info

    def test_put_is_idempotent(self, store: Store) -> None:
        data = payload(1000, compressible=True)
        first = store.put_bytes(data)
        again = store.put_bytes(data)
        assert again == first
        assert store.put_stream(io.BytesIO(data)).digest == first.digest
        assert list(store.iter_digests()) == [first.digest]

    def test_put_many_and_missing_in_batches(self, store: Store) -> None:
        datas = [payload(4096, seed=i, compressible=i % 2 == 0) for i in range(40)]
        first = store.put_many(datas[:25])
        assert first == [hash_bytes(d) for d in datas[:25]]
        digests = [hash_bytes(d) for d in datas]
        assert store.missing(digests) == digests[25:]
        store.put_many(datas + datas[:3])  # repeats and present objects are fine
        assert store.missing(digests) == []
        for data, digest in zip(datas, digests, strict=True):
            assert store.get_bytes(digest) == data

    def test_packed_objects_behave_like_loose_ones(self, store: Store, tmp_path: Path) -> None:
        datas = [payload(3000 + i, seed=i, compressible=i % 2 == 0) for i in range(30)]
        digests = store.put_many(datas)
        assert list(store.backend.list(layout.OBJECTS)) == []  # all in a pack
        assert set(store.iter_digests()) == set(digests)
        fresh = open_store(store.url, cache=False)  # another process: reads the index
        for data, digest in zip(datas, digests, strict=True):
            assert fresh.has(digest)
            stat = fresh.stat(digest)
            assert (stat.digest, stat.size) == (digest, len(data))
            assert stat.encoding == "packed"
            assert fresh.get_bytes(digest) == data
            fresh.verify(digest)
        assert fresh.resolve(digests[3][7:19]) == digests[3]
        with fresh.read_many(reversed(digests)) as reading:  # as they lie, each once
            assert list(reading) == list(zip(digests, datas, strict=True))
        used: list[tuple[str, bytes]] = []
        fresh.read_each([*digests, digests[0]], lambda *pair: used.append(pair))
        assert sorted(used) == sorted(zip(digests, datas, strict=True))  # each once
        out = tmp_path / "out"
        fresh.get_file(digests[0], out)
        assert out.read_bytes() == datas[0]
        with pytest.raises(CasError, match="garbage collection"):
            fresh.delete(digests[0])

    def test_corrupt_pack_is_detected(self, store: Store) -> None:
        digests = store.put_many([payload(5000, seed=i) for i in range(3)])
        (pack_key,) = list(store.backend.list(layout.PACKS))
        stored = bytearray(store.backend.read_bytes(pack_key))
        stored[-1] ^= 1  # the last object's last byte
        store.backend.write_bytes(pack_key, bytes(stored))
        fresh = open_store(store.url, cache=False)
        # The three share one block: each reads back whole or not at all, never wrong.
        for i, digest in enumerate(digests):
            with contextlib.suppress(IntegrityError):
                assert fresh.get_bytes(digest) == payload(5000, seed=i)
        with pytest.raises(IntegrityError):
            fresh.get_bytes(digests[2])  # the damaged byte is in the last one
        with pytest.raises(IntegrityError):
            fresh.verify(digests[2])
        with pytest.raises(IntegrityError), fresh.read_many(digests) as reading:
            list(reading)
        with pytest.raises(IntegrityError):
            fresh.read_each(digests, lambda digest, content: None)
        store.backend.write_bytes(pack_key, bytes(stored[:100]))
        with pytest.raises(IntegrityError, match="truncated"):
            open_store(store.url, cache=False).get_bytes(digests[1])

    def test_a_pack_without_its_index_is_invisible(self, store: Store) -> None:
        digest = store.put_many([b"packed once"])[0]
        (index_key,) = list(store.backend.list(layout.INDEX))
        store.backend.delete(index_key)
        fresh = open_store(store.url, cache=False)
        assert not fresh.has(digest)
        assert fresh.missing([digest]) == [digest]

    def test_open_streams_in_pieces(self, store: Store) -> None:
        data = payload(2 * IO_SIZE + 5, compressible=True)
        digest = store.put_bytes(data).digest
        with store.open(digest) as reader:
            parts = []
            while piece := reader.read(123_457):
                parts.append(piece)
            assert reader.verified
        assert b"".join(parts) == data

    def test_has_stat_iter_delete(self, store: Store) -> None:
        digests = {store.put_bytes(payload(50, seed=i)).digest for i in range(5)}
        assert set(store.iter_digests()) == digests
        some = sorted(digests)[0]
        assert store.has(some)
        stat = store.stat(some)
        assert (stat.size, stat.encoding) == (50, "raw")
        assert stat.stored_size == 50 + HEADER_SIZE
        store.delete(some)
        assert not store.has(some)
        assert set(store.iter_digests()) == digests - {some}
        with pytest.raises(ObjectNotFound):
            store.delete(some)

    def test_missing_object_raises_not_found_everywhere(self, store: Store, tmp_path: Path) -> None:
        missing = hash_bytes(b"never stored")
        dest = tmp_path / "dest"
        dest.mkdir()
        out = dest / "out"
        for call in (
            lambda: store.get_bytes(missing),
            lambda: store.open(missing),
            lambda: store.stat(missing),
            lambda: store.verify(missing),
            lambda: store.get_file(missing, out),
        ):
            with pytest.raises(ObjectNotFound):
                call()
            with pytest.raises(FileNotFoundError):
                call()
        assert list(dest.iterdir()) == []

    @pytest.mark.parametrize("how", ["flip", "truncate", "header", "extend"])
    @pytest.mark.parametrize("compressible", [True, False])
    def test_corruption_detected_on_every_read_path(
        self, store: Store, tmp_path: Path, how: str, compressible: bool
    ) -> None:
        data = payload(IO_SIZE + 999, seed=7, compressible=compressible)
        digest = store.put_bytes(data).digest
        corrupt(store, digest, how)

        with pytest.raises(IntegrityError):
            store.get_bytes(digest)
        with pytest.raises(IntegrityError), store.open(digest) as reader:
            reader.read()
        with pytest.raises(IntegrityError):
            store.verify(digest)
        with pytest.raises(IntegrityError), store.read_many([digest]) as reading:
            list(reading)
        dest = tmp_path / "dest"
        dest.mkdir()
        out = dest / "file"
        out.write_bytes(b"precious")
        with pytest.raises(IntegrityError):
            store.get_file(digest, out)
        assert out.read_bytes() == b"precious"
        assert list(dest.iterdir()) == [out]

    def test_resolve_prefix_and_ambiguity(self, store: Store) -> None:
        digests = [store.put_bytes(payload(10, seed=i)).digest for i in range(40)]
        target = digests[0]
        assert store.resolve(target[7:15]) == target
        assert store.resolve(target[7:]) == target
        assert store.resolve(target) == target
        with pytest.raises(ObjectNotFound):
            store.resolve("0" * 8 if not target.startswith("blake3:00000000") else "f" * 8)
        with pytest.raises(InvalidDigest, match="too short"):
            store.resolve(target[7:13])
        # Fake a second object sharing an 8-hex prefix: the key layout decides the folder.
        twin = target[:15] + ("0" if target[15] != "0" else "1") * 56
        store.backend.write_bytes(layout.object_key(twin), b"x")
        with pytest.raises(InvalidDigest, match="ambiguous"):
            store.resolve(target[7:15])

    def test_tags(self, store: Store) -> None:
        a = store.put_bytes(b"a").digest
        b = store.put_bytes(b"b").digest
        store.tag("run-1", a)
        store.tag("baseline_v2.0", b)
        assert store.tags() == {"baseline_v2.0": b, "run-1": a}
        assert store.resolve("run-1") == a
        store.tag("run-1", a)  # the same target again: fine
        with pytest.raises(RefExists):
            store.tag("run-1", b)  # a tag never moves silently
        assert store.tag_target("run-1") == a
        store.tag("run-1", b, force=True)
        assert store.tag_target("run-1") == b
        store.untag("run-1")
        assert store.tags() == {"baseline_v2.0": b}
        with pytest.raises(ObjectNotFound):
            store.resolve("run-1")
        with pytest.raises(ObjectNotFound):
            store.tag("ghost", hash_bytes(b"never stored"))

    def test_refs_have_namespaces_and_never_surprise(self, store: Store) -> None:
        a, b = store.put_bytes(b"a").digest, store.put_bytes(b"b").digest
        store.tag("team-a/law/run7", a)
        store.tag("team-b/law/run7", b)
        assert store.tags("team-a/*") == {"team-a/law/run7": a}
        assert store.resolve("team-b/law/run7") == b
        assert store.resolve("tags/team-b/law/run7") == b
        with pytest.raises(RefExists):
            store.tag("team-a/law", b)  # a namespace, not a name
        with pytest.raises(RefExists):
            store.tag("team-a/law/run7/x", b)  # below a name
        assert store.claim_ref("runs", "t1", a) == "runs/t1"
        assert store.claim_ref("runs", "t1", a) == "runs/t1"  # the same run again
        assert store.claim_ref("runs", "t1", b) == "runs/t1-2"  # never overwritten
        assert store.refs("runs/*") == {"runs/t1": a, "runs/t1-2": b}
        # Resolution: prefixes first (ref names are never all hex), then tags, runs...
        assert store.resolve("t1") == a and store.resolve("t1-2") == b
        store.tag("t1", b)
        assert store.resolve("t1") == b and store.resolve("runs/t1") == a
        assert store.resolve(a[7:19]) == a

    @pytest.mark.parametrize(
        "name",
        [
            "",
            "..",
            "../x",
            "/abs",
            ".hidden",
            "a..b",
            "x" * 201,
            "-flag",
            "sp ace",
            "a//b",
            "a/",
            "deadbeef",
            "CAFE0123",
            "0123456789",
            "runs/x",
            "tags/y",
        ],
    )
    def test_bad_tag_names_are_refused(self, store: Store, name: str) -> None:
        digest = store.put_bytes(b"x").digest
        with pytest.raises(InvalidRefName):
            store.tag(name, digest)
        assert store.tags() == {}

    def test_not_a_store(self, store_url: str) -> None:
        with pytest.raises(NotAStore, match="cas init"):
            open_store(store_url)

    def test_newer_format_is_refused(self, store: Store) -> None:
        store.backend.write_bytes(layout.MARKER, b'{"casstore_format": 99}')
        with pytest.raises(NotAStore, match="format 99"):
            open_store(store.url)

    def test_a_chunked_object_reads_like_any_other(self, store: Store, tmp_path: Path) -> None:
        # Files of 8 MiB and more in a batch are stored as content-defined chunks: every
        # reader must give the whole content, verified, whatever the piece sizes.
        data = payload(9_000_000, seed=5)
        with store.batch() as batch:
            digest = batch.put_stream(io.BytesIO(data), size=len(data))
        assert store.chunk_list(digest) is not None
        assert store.get_bytes(digest) == data
        with store.read_many([digest]) as reading:
            assert list(reading) == [(digest, data)]
        used: list[tuple[str, bytes]] = []
        store.read_each([digest], lambda *pair: used.append(pair))
        assert used == [(digest, data)]
        with store.open(digest) as reader:
            assert reader.read(7) == data[:7]
            assert reader.read(3_000_000) == data[7:3_000_007]  # full reads, never short
            assert reader.read() == data[3_000_007:]
        out = tmp_path / "chunked"
        assert store.get_file(digest, out) == len(data) and out.read_bytes() == data
        sink = io.BytesIO()
        assert store.copy_to(digest, sink) == len(data) and sink.getvalue() == data
        info = store.verify(digest)
        assert (info.size, info.encoding) == (len(data), "chunked")
        assert store.stat(digest).size == len(data)
        assert store.has(digest) and store.missing([digest]) == []
