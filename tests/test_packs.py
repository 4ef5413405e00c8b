"""Packs from the inside (docs/FORMAT.md section 4): blocks sealed at their size, packs
closed at theirs, staged where gc and a crash expect, published before their index,
and read back a block at a time through a small cache of decoded blocks."""

from __future__ import annotations

import errno
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import zstandard
from blake3 import blake3

from casstore.errors import BackendError, IntegrityError
from casstore.fileio import TEMP_MARK
from casstore.format import layout
from casstore.format.digest import hash_bytes
from casstore.format.objects import one_shot_compressor
from casstore.format.packindex import BLOCK_SIZE, MAX_PACKED_SIZE, Location
from casstore.store import packs
from casstore.store.indexes import IndexSet
from casstore.store.objects import Store
from casstore.store.packs import BlockReader, PackWriter

LEVEL = 3


def contents(n: int, size: int) -> list[bytes]:
    return [bytes([i]) * size for i in range(n)]


def written(store: Store, items: list[bytes]) -> tuple[PackWriter, IndexSet]:
    writer = PackWriter(store.backend, IndexSet(store.backend), LEVEL)
    for item in items:
        writer.add(hash_bytes(item), item)
    writer.flush()
    writer.close(discard=False)
    return writer, IndexSet(store.backend)


def where(index: IndexSet, item: bytes) -> Location:
    found = index.get(hash_bytes(item))
    assert found is not None
    return found


def staged(store: Store) -> list[str]:
    return sorted(p.name for p in Path(store.backend.staging_dir()).iterdir())


def test_a_block_is_sealed_once_it_reaches_the_block_size(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "BLOCK_SIZE", 100)
    a, b, c = b"a" * 60, b"b" * 40, b"c" * 10  # a and b fill a block exactly
    _, index = written(local_store, [a, b, c])
    first, second, third = where(index, a), where(index, b), where(index, c)
    assert first.block_offset == second.block_offset != third.block_offset
    assert (first.offset, first.length, second.offset, second.length) == (0, 60, 60, 40)
    assert (third.offset, third.length) == (0, 10)
    assert third.block_offset == first.block_length


def test_a_pack_is_closed_once_it_reaches_the_pack_size(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "BLOCK_SIZE", 100)
    items = contents(6, 50)  # three blocks of two objects
    frame = one_shot_compressor(LEVEL).compress(items[0] + items[1])
    monkeypatch.setattr(packs, "TARGET_PACK_SIZE", 2 * len(frame))
    writer, index = written(local_store, items)
    assert len(writer.published) == 2  # two blocks reach the size; the third is the rest
    by_pack = [where(index, item).pack for item in items]
    assert by_pack[:4] == [writer.published[0]] * 4
    assert by_pack[4:] == [writer.published[1]] * 2


def test_a_pack_is_staged_then_published_before_its_index(local_store: Store) -> None:
    backend = local_store.backend
    items = contents(3, 1000)
    writer = PackWriter(backend, IndexSet(backend), LEVEL)
    for item in items:
        writer.add(hash_bytes(item), item)
    assert all(writer.holds(hash_bytes(item)) for item in items)
    assert not writer.holds(hash_bytes(b"other"))
    writer._seal()  # the block goes to the staged pack file now, not at flush
    writer._write_ready(wait=True)
    [name] = staged(local_store)
    assert name.startswith(f"{TEMP_MARK}pack-")
    assert list(backend.list(layout.INDEX)) == []
    writer.flush()
    writer.close(discard=False)
    assert staged(local_store) == []
    [pack] = writer.published
    data = backend.read_bytes(layout.pack_key(pack))
    assert pack == "blake3:" + blake3(data).hexdigest()
    assert backend.exists(layout.index_key(pack))
    assert not any(writer.holds(hash_bytes(item)) for item in items)
    assert [local_store.get_bytes(hash_bytes(item)) for item in items] == items


def test_closing_with_discard_leaves_nothing_staged(local_store: Store) -> None:
    writer = PackWriter(local_store.backend, IndexSet(local_store.backend), LEVEL)
    writer.add(hash_bytes(b"x" * 10), b"x" * 10)
    writer._seal()
    writer._write_ready(wait=True)
    assert len(staged(local_store)) == 1
    writer.close(discard=True)
    assert staged(local_store) == []
    assert writer.published == []
    assert list(local_store.backend.list(layout.PACKS)) == []


def test_decoded_blocks_are_kept_up_to_a_budget_of_bytes(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "BLOCK_SIZE", 100)
    monkeypatch.setattr(packs, "CACHE_BYTES", 400)  # four blocks of 100 bytes
    items = contents(5, 100)  # one block each
    _, index = written(local_store, items)
    backend = local_store.backend
    fetched: list[int] = []
    read_range = backend.read_range

    def counting(key: str, start: int, end: int) -> bytes:
        fetched.append(start)
        return read_range(key, start, end)

    monkeypatch.setattr(backend, "read_range", counting)
    reader = BlockReader(backend)
    places = [where(index, item) for item in items]
    assert len({p.block_offset for p in places}) == 5
    for item, place in zip(items, places, strict=True):
        assert reader.read(hash_bytes(item), place) == item
        assert reader.read(hash_bytes(item), place) == item  # the second from the cache
    assert len(fetched) == 5
    assert reader.read(hash_bytes(items[1]), places[1]) == items[1]  # among the last four
    assert len(fetched) == 5
    assert reader.read(hash_bytes(items[0]), places[0]) == items[0]  # the oldest, dropped
    assert fetched == [p.block_offset for p in places] + [places[0].block_offset]


def _waiting(thread: threading.Thread) -> bool:
    """``thread`` is blocked in a wait (a future's result, a condition)."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code.co_name == "wait":
            return True
        frame = frame.f_back
    return False


def test_a_block_two_threads_want_at_once_is_read_and_decoded_once(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [b"a" * 50, b"b" * 50]  # one block
    _, index = written(local_store, items)
    backend = local_store.backend
    fetched: list[int] = []
    entered, release = threading.Event(), threading.Event()
    read_range = backend.read_range

    def held(key: str, start: int, end: int) -> bytes:
        fetched.append(start)
        entered.set()
        release.wait()
        return read_range(key, start, end)

    monkeypatch.setattr(backend, "read_range", held)
    reader = BlockReader(backend)
    got: list[bytes] = []
    first = threading.Thread(target=lambda: got.append(reader.read("a", where(index, items[0]))))
    second = threading.Thread(target=lambda: got.append(reader.read("b", where(index, items[1]))))
    first.start()
    entered.wait()
    second.start()
    # Until the second reader waits for the first's block, or fetches it a second time.
    while not _waiting(second) and len(fetched) < 2:
        time.sleep(0.001)
    release.set()
    first.join()
    second.join()
    assert sorted(got) == items
    assert len(fetched) == 1


def put_frame(store: Store, frame: bytes) -> Location:
    pack = "blake3:" + blake3(frame).hexdigest()
    store.backend.create_many([(layout.pack_key(pack), frame)])
    return Location(pack, 0, len(frame), 0, 1)


def test_a_truncated_pack_is_refused(local_store: Store) -> None:
    frame = one_shot_compressor(LEVEL).compress(b"abc")
    place = put_frame(local_store, frame)
    short = Location(place.pack, 0, len(frame) + 5, 0, 3)
    message = f"D: its pack {place.pack} is truncated"
    with pytest.raises(IntegrityError, match=f"^{re.escape(message)}$"):
        BlockReader(local_store.backend).read("D", short)


def test_a_block_larger_than_any_we_write_is_refused_before_it_is_decoded(
    local_store: Store,
) -> None:
    limit = BLOCK_SIZE + MAX_PACKED_SIZE
    reader = BlockReader(local_store.backend)
    at_limit = put_frame(local_store, zstandard.ZstdCompressor().compress(bytes(limit)))
    assert reader.read("D", at_limit) == b"\0"
    # One byte more, declared in the frame header: refused before anything is decoded.
    bomb = zstandard.ZstdCompressor().compress(bytes(limit + 1))
    place = put_frame(local_store, bomb)
    message = f"D: a block in pack {place.pack} claims {limit + 1} bytes (a block holds at most"
    with pytest.raises(IntegrityError, match=f"^{re.escape(message)}"):
        reader.read("D", place)
    # A frame that declares no size (another writer's) is read, bounded while decoded.
    compressor = zstandard.ZstdCompressor(write_content_size=False)
    fits = put_frame(local_store, compressor.compress(b"z" * 1000))
    assert reader.read("D", fits) == b"z"
    undeclared = put_frame(local_store, compressor.compress(bytes(limit + 1)))
    with pytest.raises(IntegrityError, match="a corrupt block in pack"):
        reader.read("D", undeclared)


@pytest.mark.parametrize(
    ("module", "name"), [(tempfile, "NamedTemporaryFile"), (os, "fsync")], ids=["create", "sync"]
)
def test_a_full_disk_while_staging_is_the_stores_error_and_leaves_nothing(
    local_store: Store, monkeypatch: pytest.MonkeyPatch, module: object, name: str
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    writer = PackWriter(local_store.backend, IndexSet(local_store.backend), LEVEL)
    writer.add(hash_bytes(b"x"), b"x")
    with monkeypatch.context() as patch:
        patch.setattr(module, name, full)
        message = "^cannot write a temp file for the store: No space left on device$"
        with pytest.raises(BackendError, match=message):
            writer.flush()
    writer.close(discard=True)
    assert staged(local_store) == []
    assert list(local_store.backend.list(layout.PACKS)) == []


class _HeldUploads:
    """Wraps a backend's publish: pack uploads wait until released (no clock involved)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls: list[str] = []
        publish = store.backend.publish

        def held(local_path: Path, key: str) -> bool:
            self.calls.append(key)
            self.started.set()
            assert self.release.wait(60), "the test never released the upload"
            if fail:
                raise BackendError("the server went away")
            return publish(local_path, key)

        monkeypatch.setattr(store.backend, "publish", held)


def _fill_packs(writer: PackWriter, items: list[bytes]) -> None:
    for item in items:
        writer.add(hash_bytes(item), item)


def _small_packs(monkeypatch: pytest.MonkeyPatch, count: int, blocks_a_pack: int) -> list[bytes]:
    """``count`` objects of a block each, packs closed every ``blocks_a_pack`` blocks."""
    monkeypatch.setattr(packs, "BLOCK_SIZE", 100)
    items = contents(count, 100)
    frame = one_shot_compressor(LEVEL).compress(items[0])
    monkeypatch.setattr(packs, "TARGET_PACK_SIZE", blocks_a_pack * len(frame))
    return items


def test_the_next_pack_fills_while_one_uploads_and_its_index_waits_for_it(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = _small_packs(monkeypatch, 6, blocks_a_pack=2)
    uploads = _HeldUploads(local_store, monkeypatch)
    backend = local_store.backend
    writer = PackWriter(backend, IndexSet(backend), LEVEL)
    _fill_packs(writer, items[:2])
    writer._write_ready(wait=True)
    _fill_packs(writer, items[2:4])  # the first pack closes and goes to the uploader
    assert uploads.started.wait(60)
    writer._write_ready(wait=True)  # returns although the first upload is held
    # The second pack was written and closed meanwhile, staged beside the first.
    assert len([name for name in staged(local_store) if name.startswith(TEMP_MARK)]) == 2
    assert list(backend.list(layout.INDEX)) == []  # nothing points into a held pack
    assert all(writer.holds(hash_bytes(item)) for item in items[:4])  # present to writers
    uploads.release.set()
    _fill_packs(writer, items[4:])
    writer.flush()
    writer.close(discard=False)
    assert len(writer.published) == 3 and staged(local_store) == []
    index = IndexSet(backend)
    for item in items:
        assert local_store.get_bytes(hash_bytes(item)) == item
        assert where(index, item).pack in writer.published
    # In order, each pack before its index.
    expected = [[layout.pack_key(p), layout.index_key(p)] for p in writer.published]
    assert uploads.calls == [key for pair in expected for key in pair]


def test_a_failed_upload_is_raised_by_the_writer_and_leaves_nothing_staged(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = _small_packs(monkeypatch, 6, blocks_a_pack=2)
    uploads = _HeldUploads(local_store, monkeypatch, fail=True)
    uploads.release.set()
    writer = PackWriter(local_store.backend, IndexSet(local_store.backend), LEVEL)
    with pytest.raises(BackendError, match=r"^the server went away$"):
        _fill_packs(writer, items)
        writer.flush()
    writer.close(discard=True)
    assert staged(local_store) == []
    assert writer.published == []
    assert list(local_store.backend.list(layout.PACKS)) == []
    assert list(local_store.backend.list(layout.INDEX)) == []


def test_closing_with_uploads_queued_leaves_each_pack_published_whole_or_not_at_all(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = _small_packs(monkeypatch, 4, blocks_a_pack=1)
    uploads = _HeldUploads(local_store, monkeypatch)
    backend = local_store.backend
    writer = PackWriter(backend, IndexSet(backend), LEVEL)
    _fill_packs(writer, items[:2])
    writer._write_ready(wait=True)
    assert uploads.started.wait(60)
    uploads.release.set()  # the queued upload may or may not have started: both are fine
    writer.close(discard=True)
    assert staged(local_store) == []
    published = {layout.pack_key(p) for p in writer.published}
    assert set(backend.list(layout.PACKS)) == published
    assert len(list(backend.list(layout.INDEX))) == len(published)


def test_content_added_from_a_buffer_is_kept_as_it_was(local_store: Store) -> None:
    buffer = bytearray(b"what the file held")
    digest = hash_bytes(buffer)
    writer = PackWriter(local_store.backend, IndexSet(local_store.backend), LEVEL)
    writer.add(digest, buffer)  # type: ignore[arg-type]
    buffer[:4] = b"XXXX"  # its owner reuses the buffer before the block is sealed
    writer.flush()
    writer.close(discard=False)
    place = where(IndexSet(local_store.backend), b"what the file held")
    assert BlockReader(local_store.backend).read(digest, place) == b"what the file held"
