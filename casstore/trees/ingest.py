"""Snapshots in, as trees: every file stored as a blob, then the tree record.

The record is stored only once every blob it names is durably stored, and not
at all if any member is refused.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from blake3 import blake3

from casstore.errors import ArchiveError
from casstore.format import tree
from casstore.format.digest import PREFIX
from casstore.format.objects import IO_SIZE
from casstore.format.tree import DEFAULT_LIMITS, Entry, Kind, Limits
from casstore.trees.archives import (
    DEFAULT_MAX_BYTES,
    Member,
    corrupt_as_archive_error,
    read_members,
)

if TYPE_CHECKING:
    from casstore.trees.protocol import BatchWriter, ObjectWriter

#: Stores (or just hashes) one file member; returns its digest, or a future of it.
ContentSink = Callable[[Member], "str | Future[str]"]
#: Files up to this size are read whole and handed to the hashing thread.
HANDED_OFF = 8 << 20
#: Bytes read ahead of the hashing thread, at most.
READ_AHEAD = 64 << 20
#: A hand-off to the hashing thread: this many bytes, or files, whichever comes first.
GROUP_BYTES = 1 << 20
GROUP_FILES = 256


@dataclass(frozen=True)
class TreeInfo:
    """A tree's digest and record size, and what the snapshot holds."""

    digest: str
    size: int
    files: int
    file_bytes: int


def build(
    source: str | os.PathLike[str],
    sink: ContentSink,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Callable[[int], None] | None = None,
    before: Callable[[], None] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[bytes, int, int]:
    """The canonical record of ``source`` with each file passed to ``sink``; ``before``
    runs once every member is read, before the digests are collected.

    Returns (record bytes, file count, total file bytes).
    """
    pending: list[tuple[str, Kind, int, str | Future[str], bool, str]] = []
    files: dict[str, int] = {}
    total = 0
    settled = 0  # pending[:settled] hold digests, not futures
    # Closed on any error, not when collected (see _tar_members in archives).
    with contextlib.closing(read_members(source, max_bytes=max_bytes)) as reading:
        for member in reading:
            if len(pending) >= limits.max_entries:
                limits.check_entries(len(pending) + 1, str(source))
            if len(pending) - settled >= SETTLE_EVERY:
                settled = _settle(pending, settled)
            if member.type != "file":
                pending.append((member.path, member.type, 0, "", False, member.target))
                continue
            if member.hardlink:
                linked = files.get(member.hardlink)
                if linked is None:
                    raise ArchiveError(
                        f"{member.path!r}: a hard link to {member.hardlink!r}, not seen before it"
                    )
                _, _, size, digest, executable, _ = pending[linked]
            else:
                with corrupt_as_archive_error(repr(member.path)):
                    digest = sink(member)
                size, executable = member.size, member.executable
                total += size
                if progress is not None:
                    progress(size)
            files[member.path] = len(pending)
            pending.append((member.path, "file", size, digest, executable, ""))
    if before is not None:
        before()
    entries = [
        Entry(path, kind, size, digest if isinstance(digest, str) else digest.result(), x, t)
        for path, kind, size, digest, x, t in pending
    ]
    # Folders that hold something are implied by their contents: only empty ones stay.
    parents: set[str] = set()
    for entry in entries:
        parts = entry.path.split("/")
        parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
    kept = [e for e in entries if e.type != "dir" or e.path not in parents]
    return tree.encode(kept), len(files), total


#: How many members may hold a future (about 1 KiB each) before the finished ones are
#: swapped for their digests: a million small files would otherwise hold a GiB of them.
SETTLE_EVERY = 4096


def _settle(pending: list[tuple[str, Kind, int, str | Future[str], bool, str]], start: int) -> int:
    """Replace the finished futures of ``pending[start:]`` by their digests, in order; returns
    the index of the first one not finished yet."""
    for index in range(start, len(pending)):
        path, kind, size, digest, executable, target = pending[index]
        if isinstance(digest, Future):
            if not digest.done():
                return index
            pending[index] = (path, kind, size, digest.result(), executable, target)
    return len(pending)


def hash_member(member: Member) -> str:
    assert member.content is not None
    hasher = blake3()
    while piece := member.content.read(IO_SIZE):
        hasher.update(piece)
    return PREFIX + hasher.hexdigest()


def tree_digest(
    source: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    limits: Limits = DEFAULT_LIMITS,
) -> TreeInfo:
    """The digest ``put_tree`` would give ``source``, storing nothing."""
    record, files, total = build(source, hash_member, max_bytes=max_bytes, limits=limits)
    return TreeInfo(PREFIX + blake3(record).hexdigest(), len(record), files, total)


def local_tree(
    source: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[str, list[Entry]]:
    """The digest and entries of a local snapshot's tree, storing nothing."""
    record, _, _ = build(source, hash_member, max_bytes=max_bytes, limits=limits)
    return PREFIX + blake3(record).hexdigest(), tree.decode(record, str(source))


class _Handoff:
    """Files read on this thread, hashed and stored on another, in groups (a hand-off per
    file would cost more than the hashing it moves)."""

    def __init__(self, batch: BatchWriter, pool: ThreadPoolExecutor) -> None:
        self._batch, self._pool = batch, pool
        self._group: list[tuple[bytes, Future[str]]] = []
        self._bytes = 0
        self._room = threading.BoundedSemaphore(READ_AHEAD // GROUP_BYTES)
        self._futures: list[Future[None]] = []

    def add(self, data: bytes) -> Future[str]:
        slot: Future[str] = Future()
        self._group.append((data, slot))
        self._bytes += len(data)
        if self._bytes >= GROUP_BYTES or len(self._group) >= GROUP_FILES:
            self.send()
        return slot

    def send(self) -> None:
        if not self._group:
            return
        group, self._group, self._bytes = self._group, [], 0
        self._room.acquire()
        self._futures.append(self._pool.submit(self._store, group))

    def _store(self, group: list[tuple[bytes, Future[str]]]) -> None:
        try:
            for data, slot in group:
                slot.set_result(self._batch.put_stream(io.BytesIO(data), size=len(data)))
        except BaseException as exc:
            for _, slot in group:
                if not slot.done():
                    slot.set_exception(exc)
            raise
        finally:
            self._room.release()

    def finish(self) -> None:
        self.send()
        for future in self._futures:
            future.result()


def put_tree(
    store: ObjectWriter,
    source: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Callable[[int], None] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> TreeInfo:
    """Store a snapshot: a pipeline in which this thread parses the archive and reads
    each file, a second one hashes and deduplicates it, and the batch compresses
    and writes blocks on every core."""
    with (
        store.batch() as batch,
        ThreadPoolExecutor(1, thread_name_prefix="casstore-hash") as hasher,
    ):
        handoff = _Handoff(batch, hasher)

        def store_member(member: Member) -> str | Future[str]:
            assert member.content is not None
            if member.size >= HANDED_OFF:
                return batch.put_stream(member.content, size=member.size)
            return handoff.add(member.content.read(member.size))

        record, files, total = build(
            source,
            store_member,
            max_bytes=max_bytes,
            progress=progress,
            before=handoff.finish,
            limits=limits,
        )
        batch.flush()  # every blob is published before the record that names them
        info = store.put_bytes(record)
    return TreeInfo(info.digest, info.size, files, total)
