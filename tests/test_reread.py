"""Re-reading many objects (fsck, verify): packed objects a span of blocks per request,
each block decoded once; loose ones one by one, chunks read once."""

from __future__ import annotations

import concurrent.futures
import io
import itertools
import random
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from casstore.errors import IntegrityError, ObjectNotFound
from casstore.format import layout
from casstore.format.digest import hash_bytes
from casstore.format.objects import one_shot_compressor
from casstore.format.packindex import MAX_PACKED_SIZE, Location
from casstore.store import packs, reread
from casstore.store.objects import Store
from casstore.store.packs import SPAN_BYTES, SPAN_GAP, block_spans, read_span
from casstore.store.reread import Checked


def test_neighbouring_blocks_make_one_span_up_to_its_size() -> None:
    blocks = [(0, 100), (100, 50), (150, 10)]
    assert block_spans(blocks) == [blocks]
    # A gap up to SPAN_GAP is read over; a larger one starts a new span.
    assert block_spans([(0, 10), (10 + SPAN_GAP, 5)]) == [[(0, 10), (10 + SPAN_GAP, 5)]]
    assert block_spans([(0, 10), (11 + SPAN_GAP, 5)]) == [[(0, 10)], [(11 + SPAN_GAP, 5)]]
    # A span ends where the next block would take it past SPAN_BYTES.
    half = SPAN_BYTES // 2
    assert block_spans([(0, half), (half, half), (2 * half, 1)]) == [
        [(0, half), (half, half)],
        [(2 * half, 1)],
    ]
    # A block larger than a span is a span of its own.
    assert block_spans([(0, SPAN_BYTES + 1), (SPAN_BYTES + 1, 1)]) == [
        [(0, SPAN_BYTES + 1)],
        [(SPAN_BYTES + 1, 1)],
    ]
    assert block_spans([]) == []


def _pack(store: Store, frames: list[bytes]) -> tuple[str, list[tuple[int, int]]]:
    data = b"".join(frames)
    pack = hash_bytes(data)
    store.backend.create_many([(layout.pack_key(pack), data)])
    offsets, at = [], 0
    for frame in frames:
        offsets.append((at, len(frame)))
        at += len(frame)
    return pack, offsets


def test_a_span_decodes_each_block_or_says_why_it_cannot(local_store: Store) -> None:
    good = [one_shot_compressor(3).compress(bytes([i]) * 300) for i in range(3)]
    damaged = b"\xff" + good[1][1:]  # no longer a zstd frame
    pack, blocks = _pack(local_store, [good[0], damaged, good[2]])
    found = list(read_span(local_store.backend, pack, blocks))
    assert [offset for offset, _ in found] == [offset for offset, _ in blocks]
    assert found[0][1] == bytes([0]) * 300 and found[2][1] == bytes([2]) * 300
    assert isinstance(found[1][1], IntegrityError)
    assert str(found[1][1]).startswith(f"a corrupt block in pack {pack} (")
    # A span longer than the pack: the blocks past its end are truncated, not misread.
    cut = [*blocks, (blocks[-1][0] + blocks[-1][1], 40)]
    *_, (_, last) = read_span(local_store.backend, pack, cut)
    assert isinstance(last, IntegrityError)
    assert str(last) == f"its pack {pack} is truncated"
    local_store.backend.delete(layout.pack_key(pack))
    with pytest.raises(ObjectNotFound):
        next(read_span(local_store.backend, pack, blocks))


def _counting(store: Store, monkeypatch: pytest.MonkeyPatch, method: str) -> Counter[str]:
    """Calls of one of the backend's read methods, by key."""
    calls: Counter[str] = Counter()
    original = getattr(store.backend, method)

    def counted(key: str, *args: Any) -> Any:
        calls[key] += 1
        return original(key, *args)

    monkeypatch.setattr(store.backend, method, counted)
    return calls


def test_packed_objects_are_read_a_span_at_a_time(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "BLOCK_SIZE", 1000)
    rng = random.Random(3)
    contents = [rng.randbytes(400) for _ in range(60)]  # about 24 blocks, one pack
    digests = local_store.put_many(contents)
    assert len({local_store.packs.get(d).block_offset for d in digests}) == 20  # type: ignore[union-attr]
    reads = _counting(local_store, monkeypatch, "read_range")
    found = reread.reread(local_store, digests)
    assert found == {d: Checked(400) for d in digests}
    assert list(reads.values()) == [1]  # one request for the whole pack, not one a block


def _damage_block(store: Store, digest: str) -> Location:
    """The first byte of the block holding ``digest`` flipped; where that is."""
    victim = store.packs.get(digest)
    assert victim is not None
    stored = bytearray(store.backend.read_bytes(victim.key))
    stored[victim.block_offset] ^= 0xFF
    store.backend.write_bytes(victim.key, bytes(stored))
    return victim


def test_a_damaged_block_is_reported_for_its_objects_only(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "BLOCK_SIZE", 1000)
    rng = random.Random(4)
    digests = local_store.put_many([rng.randbytes(1000) for _ in range(6)])  # a block each
    victim = _damage_block(local_store, digests[2])
    found = reread.reread(local_store, digests)
    problem = found[digests[2]].problem or ""
    assert re.match(rf"^{digests[2]}: a corrupt block in pack {victim.pack} \(", problem)
    assert all(found[d] == Checked(1000) for d in digests if d != digests[2])


def test_a_pack_gone_since_the_listing_is_looked_for_again(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests = local_store.put_many([b"one", b"two"])

    def rewritten(*args: object) -> Any:
        raise ObjectNotFound("packs/...")

    monkeypatch.setattr(reread, "read_span", rewritten)
    assert reread.reread(local_store, digests) == {
        digests[0]: Checked(3),
        digests[1]: Checked(3),
    }
    gone = hash_bytes(b"never stored")
    assert reread.reread(local_store, [gone]) == {gone: Checked(missing=True)}
    with local_store.read_many(digests) as reading:  # a checkout looks again too
        assert dict(reading) == {digests[0]: b"one", digests[1]: b"two"}


def test_chunks_verified_inside_their_chunked_object_are_not_read_again(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = random.Random(5).randbytes(12 << 20)
    with local_store.batch() as batch:
        whole = batch.put_stream(io.BytesIO(data), size=len(data))
    chunks = local_store.chunk_list(whole) or []
    loose = [d for d, size in chunks if size > MAX_PACKED_SIZE]
    assert loose, "the test needs chunks stored on their own"
    listed = {
        digest: info.size
        for info in local_store.backend.list_detailed(layout.OBJECTS)
        if (digest := layout.digest_of_key(info.key)) is not None
    }
    assert listed.keys() == {whole, *loose}
    reads = _counting(local_store, monkeypatch, "open_read")
    # One thread, smallest first: the chunk list, then the chunks it verified already.
    found = reread.reread(local_store, list(listed), jobs=1, sizes=listed)
    assert found[whole] == Checked(len(data))
    assert all(found[d] == Checked(size) for d, size in chunks if d in loose)
    assert all(reads[layout.object_key(d)] == 1 for d in loose)


def test_records_are_returned_for_their_references(local_store: Store) -> None:
    record = b'{"casstore":"tree/1","entries":[]}'
    big = random.Random(6).randbytes(2 << 20)
    digests = [local_store.put_bytes(record).digest, local_store.put_bytes(big).digest]
    found = reread.reread(local_store, digests)
    assert found[digests[0]] == Checked(len(record), record=record)
    assert found[digests[1]] == Checked(len(big))


# -- read_many: small objects whole, for a folder's checkout -----------------------


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """Blocks decoded from now on, by their stored size."""
    decoded = Counter[int]()
    decode_block = packs.decode_block

    def counted(frame: bytes, pack: str) -> bytes:
        decoded[len(frame)] += 1
        return decode_block(frame, pack)

    monkeypatch.setattr(packs, "decode_block", counted)
    return decoded


def _blocks_of_1000(
    store: Store, monkeypatch: pytest.MonkeyPatch, seed: int, count: int
) -> list[str]:
    """``count`` objects of 1000 random bytes stored a block (and a span) each."""
    monkeypatch.setattr(packs, "BLOCK_SIZE", 1000)
    monkeypatch.setattr(reread, "READ_SPAN", 1000)
    rng = random.Random(seed)
    return store.put_many([rng.randbytes(1000) for _ in range(count)])


def test_read_many_gives_each_object_once_verified_packed_ones_as_they_lie(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "BLOCK_SIZE", 1000)
    monkeypatch.setattr(reread, "READ_SPAN", 2000)  # a few spans, read ahead
    rng = random.Random(7)
    contents = [rng.randbytes(300) for _ in range(40)]
    digests = local_store.put_many(contents)
    alone = local_store.put_bytes(rng.randbytes(MAX_PACKED_SIZE + 1)).digest  # loose
    wanted = [alone, *reversed(digests), digests[0]]  # out of order, one twice
    decoded = _count_decodes(monkeypatch)
    with local_store.read_many(wanted) as reading:
        found = list(reading)
    by_digest = dict(zip(digests, contents, strict=True))
    by_digest[alone] = local_store.get_bytes(alone)
    # Each once; in the order asked as far as spans allow: the loose one (asked first)
    # first, then the spans from the last stored to the first (asked in reverse), each
    # span's objects as they lie.
    assert found[0][0] == alone and sorted(d for d, _ in found[1:]) == sorted(digests)
    stored = [digests.index(digest) for digest, _ in found[1:]]
    runs: list[list[int]] = [[stored[0]]]
    for index in stored[1:]:
        if index > runs[-1][-1]:
            runs[-1].append(index)
        else:
            runs.append([index])
    assert len(runs) > 1 and all(a[0] > b[-1] for a, b in itertools.pairwise(runs))
    assert all(content == by_digest[digest] for digest, content in found)
    blocks = {local_store.packs.get(d).block_offset for d in digests}  # type: ignore[union-attr]
    assert sum(decoded.values()) == len(blocks)  # each block decoded once


def test_read_many_raises_at_a_damaged_object_after_those_before_it(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests = _blocks_of_1000(local_store, monkeypatch, 8, 6)
    _damage_block(local_store, digests[3])
    got: list[str] = []
    with (
        pytest.raises(IntegrityError, match=f"^{digests[3]}: a corrupt block in pack"),
        local_store.read_many(digests) as reading,
    ):
        for digest, _ in reading:
            got.append(digest)
    assert got == digests[:3]


def test_read_many_stopped_early_leaves_nothing_reading(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests = _blocks_of_1000(local_store, monkeypatch, 9, 60)
    reads = _counting(local_store, monkeypatch, "read_range")
    before = threading.active_count()
    with local_store.read_many(digests) as reading:
        assert next(reading)[0] == digests[0]
    assert threading.active_count() == before
    assert sum(reads.values()) <= reread.READ_AHEAD + 2  # bounded, not all 60


def test_read_many_through_a_cache_fills_it(local_store: Store, tmp_path: Path) -> None:
    from casstore.backends import open_backend
    from casstore.store.cache import ObjectCache

    digests = local_store.put_many([b"one", b"two", b"three"])
    cached = Store(open_backend(str(tmp_path / "cache")))
    cached.initialize()
    local_store.cache = ObjectCache(cached, 1 << 20)
    with local_store.read_many(digests) as reading:
        assert dict(reading) == dict(zip(digests, [b"one", b"two", b"three"], strict=True))
    assert cached.missing(digests) == []


# -- read_each: small objects used on the threads that read them ---------------------


def test_read_each_uses_each_object_once_verified_on_the_reading_threads(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "BLOCK_SIZE", 1000)
    monkeypatch.setattr(reread, "READ_SPAN", 2000)  # many spans, on both threads
    rng = random.Random(10)
    contents = [rng.randbytes(300) for _ in range(60)]
    digests = local_store.put_many(contents)
    alone = local_store.put_bytes(rng.randbytes(MAX_PACKED_SIZE + 1)).digest  # loose
    decoded = _count_decodes(monkeypatch)
    used: list[tuple[str, bytes]] = []
    threads: set[int] = set()
    lock = threading.Lock()

    def use(digest: str, content: bytes) -> None:
        with lock:
            used.append((digest, content))
            threads.add(threading.get_ident())

    before = threading.active_count()
    local_store.read_each([*reversed(digests), alone, digests[0]], use)
    assert threading.active_count() == before  # joined
    expected = dict(zip(digests, contents, strict=True))
    expected[alone] = local_store.get_bytes(alone)
    assert sorted(used) == sorted(expected.items())  # each once, whole
    assert threading.get_ident() not in threads  # used where it was read
    blocks = {local_store.packs.get(d).block_offset for d in digests}  # type: ignore[union-attr]
    assert sum(decoded.values()) == len(blocks)  # each block decoded once


def _wait_for_all(futures: Any, return_when: str) -> Any:
    """A caller slow to notice a failure: it waits for every task to end."""
    return concurrent.futures.wait(futures)


def test_read_each_stops_at_a_damaged_object_and_raises_it(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests = _blocks_of_1000(local_store, monkeypatch, 11, 200)
    _damage_block(local_store, digests[5])
    used: list[str] = []
    before = threading.active_count()
    with pytest.raises(IntegrityError, match=f"^{digests[5]}: a corrupt block in pack"):
        local_store.read_each(digests, lambda digest, _: used.append(digest))
    assert threading.active_count() == before and digests[5] not in used
    # On one thread, in order: nothing is used after the failure (on two, what the
    # other thread was reading meanwhile may be), even if the caller noticed it only
    # at the end: the thread that failed stops the others.
    used.clear()
    monkeypatch.setattr(reread, "wait", _wait_for_all)
    with pytest.raises(IntegrityError, match=f"^{digests[5]}: "):
        reread.read_each(local_store, digests, lambda digest, _: used.append(digest), workers=1)
    assert used == digests[:5]


def test_read_each_raises_what_its_use_raised_and_stops(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests = _blocks_of_1000(local_store, monkeypatch, 12, 200)
    used: list[str] = []

    def use(digest: str, _: bytes) -> None:
        if digest == digests[5]:
            raise OSError(28, "No space left on device")
        used.append(digest)

    with pytest.raises(OSError, match="No space left"):
        local_store.read_each(digests, use)
    used.clear()
    monkeypatch.setattr(reread, "wait", _wait_for_all)
    with pytest.raises(OSError, match="No space left"):
        reread.read_each(local_store, digests, use, workers=1)
    assert used == digests[:5]  # on one thread, in order: none after it
