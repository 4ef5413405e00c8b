"""The store: content-addressed objects over a backend. Every read re-hashes what it
returns; every write is published atomically by the backend; keys come from
:mod:`casstore.format.layout` only. Batches, packs, refs and opening are modules of
:mod:`casstore.store` beside this one."""

from __future__ import annotations

import contextlib
import functools
import io
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, BinaryIO

from casstore.backends import Backend
from casstore.config import Config
from casstore.errors import CasError, ObjectNotFound, ReadOnlyStore
from casstore.fileio import atomic_write
from casstore.format import layout, objects
from casstore.format.digest import hash_bytes, parse_digest
from casstore.format.objects import IO_SIZE, Progress, Readable
from casstore.format.reader import VerifyingReader
from casstore.format.tree import Limits
from casstore.store import refs, reread
from casstore.store.indexes import IndexSet
from casstore.store.packs import BlockReader, check_packed
from casstore.store.staging import publish_bytes, publish_stream
from casstore.store.trash import trashed

if TYPE_CHECKING:
    from casstore.store.batch import Batch
    from casstore.store.cache import ObjectCache
    from casstore.trees.ingest import TreeInfo
    from casstore.trees.protocol import Contents


@dataclass(frozen=True)
class ObjectInfo:
    """An object's digest, content size, size as stored, and encoding
    (``raw``, ``zstd``, ``chunked`` or ``packed``)."""

    digest: str
    size: int
    stored_size: int
    encoding: str


class Store(refs.Names):
    """A content-addressed store. Create with :func:`casstore.open_store`.

    Naming (tags, refs, resolving what a user typed) is in :class:`refs.Names`."""

    def __init__(
        self,
        backend: Backend,
        *,
        compression_level: int = 3,
        compression_threads: int = -1,
        config: Config | None = None,
    ) -> None:
        self.backend = backend
        self.compression_level = compression_level
        self.compression_threads = compression_threads
        self.config = config or Config()
        #: A local read-through cache, for stores that are not on a local disk.
        self.cache: ObjectCache | None = None
        #: Where packed objects are (the index files), and reading them.
        self.packs = IndexSet(backend)
        self.blocks = BlockReader(backend)
        #: The store format (``casstore_format`` of the marker), set when it is opened.
        self.format_version = layout.FORMAT_VERSION

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @functools.cached_property
    def tree_limits(self) -> Limits:
        """How large a tree this store builds or reads (``[tree]`` of store.toml)."""
        return Limits.of(self.config)

    def get_record(self, digest: str) -> bytes:
        """A record's bytes, verified; refused unread when over ``[tree] max_record_bytes``."""
        with self.open(digest) as reader:
            self.tree_limits.check_size(reader.size, digest)
            return reader.read()

    @property
    def read_only(self) -> bool:
        from casstore.backends.readonly import ReadOnlyBackend

        return isinstance(self.backend, ReadOnlyBackend)

    def require_writable(self, operation: str = "put") -> None:
        """Raise ReadOnlyStore now, before work that would end in a refused write."""
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is opened read-only: refusing to {operation}")

    @property
    def url(self) -> str:
        return self.backend.url

    def initialize(self) -> bool:
        """Write the marker unless there is one. Returns False when it was a store already."""
        from casstore.store.marker import initialize

        return initialize(self.backend)

    # -- writing ------------------------------------------------------------

    def put_bytes(self, data: bytes) -> ObjectInfo:
        """Store ``data``; returns its :class:`ObjectInfo`. Present objects are not rewritten."""
        digest = hash_bytes(data)
        if self.stored(digest):
            with contextlib.suppress(ObjectNotFound):  # unless gc took it since: store again
                return self.stat(digest)
        self.require_writable()
        stored_size, encoding = publish_bytes(self.backend, digest, data, self.compression_level)
        return ObjectInfo(digest, len(data), stored_size, encoding)

    def put_many(self, items: Iterable[bytes]) -> list[str]:
        """Store many in-memory objects in one batch; returns their digests. Small ones
        go into a pack: thousands cost a few requests (or syncs), not one each."""
        with self.batch() as batch:
            return [batch.put_bytes(data) for data in items]

    def batch(self) -> Batch:
        """A context for storing many objects: small ones are packed, and the
        pack is published (durably) when the context exits without error."""
        from casstore.store.batch import Batch

        self.require_writable()
        return Batch(self)

    def put_stream(
        self,
        stream: Readable,
        *,
        progress: Progress | None = None,
        check_present: bool = True,
        expected: str | None = None,
    ) -> ObjectInfo:
        """Store everything read from ``stream``, in bounded memory.

        An object already present is not sent again; ``check_present=False`` skips
        that check for callers that just made it (in a batch). With ``expected``,
        content that hashes to anything else raises IntegrityError and is not stored."""
        self.require_writable()
        encoded = publish_stream(
            self.backend,
            stream,
            level=self.compression_level,
            threads=self.compression_threads,
            progress=progress,
            expected=expected,
            wanted=lambda digest: not (check_present and self.stored(digest)),
        )
        return ObjectInfo(encoded.digest, encoded.size, encoded.stored_size, encoded.encoding)

    def put_file(
        self, path: str | os.PathLike[str], *, progress: Progress | None = None
    ) -> ObjectInfo:
        """Store the file at ``path``."""
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size <= IO_SIZE:
                # Small: hash first, so a present object costs no compression or write.
                data = f.read()
                if progress is not None:
                    progress(len(data))
                return self.put_bytes(data)
            return self.put_stream(f, progress=progress)

    # -- reading ------------------------------------------------------------

    def open(self, digest: str) -> VerifyingReader:
        """A readable stream of the object's content, verified when read to the end."""
        digest = parse_digest(digest)
        if self.cache is not None:
            return self.cache.open(digest, lambda: self.open_stored(digest))
        return self.open_stored(digest)

    def open_stored(self, digest: str, *, retry: bool = True) -> VerifyingReader:
        """Like :meth:`open`, always from the store itself, never from a cache."""
        content = self._packed(digest)
        if content is not None:
            header = objects.pack_header(objects.RAW, len(content))
            return VerifyingReader(io.BytesIO(header + content), digest, packed=True)
        try:
            stored = self.backend.open_read(layout.object_key(digest))
        except ObjectNotFound:
            if retry:
                # Packed or merged by another writer since the index files were listed.
                self.packs.refresh()
                return self.open_stored(digest, retry=False)
            return self._from_trash(digest)
        return self._reader(stored, digest)

    def _packed(self, digest: str) -> bytes | None:
        """A packed object's content (not yet verified), or None when it is not packed."""
        for where in self.packs.candidates(digest):
            try:
                return self.blocks.read(digest, where)
            except ObjectNotFound:
                continue  # gc rewrote that pack: the object is elsewhere now, or gone
        return None

    def _reader(self, stored: BinaryIO, digest: str) -> VerifyingReader:
        try:
            return VerifyingReader(stored, digest, self.open_stored)
        except BaseException:
            stored.close()
            raise

    def _from_trash(self, digest: str) -> VerifyingReader:
        """An object gc moved to the trash while a writer was referencing it: readable
        (verified as ever) until the next gc restores it."""
        key = trashed(self.backend, [digest]).get(digest)
        if key is None:
            raise ObjectNotFound(digest)
        return self._reader(self.backend.open_read(key), digest)

    def chunk_list(self, digest: str) -> list[tuple[str, int]] | None:
        """The chunks (digest, size) of a chunked object; None for any other object."""
        digest = parse_digest(digest)
        if digest in self.packs:
            return None
        with self.open_stored(digest) as reader:
            return reader.chunks

    def get_bytes(self, digest: str) -> bytes:
        """The whole content, verified. For large objects use :meth:`open` or :meth:`get_file`."""
        digest = parse_digest(digest)
        content = self._packed(digest) if self.cache is None else None
        if content is not None:  # the common case in a snapshot: no reader needed
            check_packed(digest, content)
            return content
        with self.open(digest) as reader:
            return reader.readall()

    def read_many(self, digests: Iterable[str]) -> Contents:
        """See :meth:`casstore.trees.protocol.ObjectReader.read_many`."""
        return reread.read_many(self, digests)

    def read_each(self, digests: Iterable[str], use: Callable[[str, bytes], None]) -> None:
        """See :meth:`casstore.trees.protocol.ObjectReader.read_each`."""
        reread.read_each(self, digests, use)

    def copy_to(self, digest: str, dest: IO[bytes], *, progress: Progress | None = None) -> int:
        """Write the content to ``dest``; returns the size. Raises at the end if it is
        wrong: bytes reach ``dest`` before, so write to something you discard on error."""
        with self.open(digest) as reader:
            return reader.copy_to(dest, progress)

    def get_file(
        self,
        digest: str,
        path: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        executable: bool = False,
    ) -> int:
        """Write the content to ``path`` atomically, only once verified. Returns the size."""
        from casstore.fileio import file_mode

        with atomic_write(path, durable=False, mode=file_mode(executable=executable)) as f:
            return self.copy_to(digest, f, progress=progress)

    def verify(self, digest: str, *, progress: Progress | None = None) -> ObjectInfo:
        """Re-hash the stored object; raises :class:`IntegrityError` when it is wrong."""
        digest = parse_digest(digest)
        # Never from the cache: verify checks what this store holds.
        with self.open_stored(digest) as reader:
            buffer = bytearray(IO_SIZE)
            while n := reader.readinto(buffer):
                if progress is not None:
                    progress(n)
        return ObjectInfo(digest, reader.size, reader.stored_size, reader.encoding)

    # Visibility. An object in gc's trash is in the store until gc deletes or restores
    # it: has, stat, prefixes and every read find it. Writers never rely on a trashed
    # copy or an index entry whose pack gc removed: they store it again (gc's grace).

    def has(self, digest: str) -> bool:
        """Whether the object can be read: packed, loose, or in gc's trash."""
        return not self.missing([digest])

    def stored(self, digest: str) -> bool:
        """Whether the object is stored live (a writer need not store it again)."""
        digest = parse_digest(digest)
        return self.packs.present(digest) is not None or self.backend.exists(
            layout.object_key(digest)
        )

    def missing(self, digests: Iterable[str], *, live: bool = False) -> list[str]:
        """The digests the store cannot read, in order; checked in one batch.

        With ``live``, an object only in gc's trash, or indexed in a pack gc has
        removed, counts as missing too: what a writer must store again. Packed
        objects cost no request; the rest one HEAD each, concurrently on S3.
        """
        wanted = [parse_digest(d) for d in digests]
        if live:
            absent = [d for d in wanted if self.packs.present(d) is None]
        else:
            absent = [d for d in wanted if d not in self.packs]
        if not absent:
            return []
        here = self.backend.exists_many([layout.object_key(d) for d in absent])
        absent = [d for d, found in zip(absent, here, strict=True) if not found]
        if not live and absent:
            # Packed by another process since the index files were listed, or trashed.
            self.packs.refresh()
            absent = [d for d in absent if d not in self.packs]
            in_trash = trashed(self.backend, absent)
            absent = [d for d in absent if d not in in_trash]
        return absent

    def loose_digests(self) -> set[str]:
        """Every object stored on its own (not in a pack): one listing."""
        return {
            digest
            for key in self.backend.list(layout.OBJECTS)
            if (digest := layout.digest_of_key(key)) is not None
        }

    def stat(self, digest: str) -> ObjectInfo:
        """Size, stored size and encoding, from the header; the content is not read."""
        digest = parse_digest(digest)
        where = self.packs.get(digest)
        if where is not None:
            # Packed objects are compressed by the block: their stored size is a share.
            return ObjectInfo(digest, where.length, where.length, "packed")
        try:  # live, else in the trash; gc may move it between any two reads
            return self._stat_at(digest, layout.object_key(digest))
        except ObjectNotFound:
            in_trash = trashed(self.backend, [digest]).get(digest)
            if in_trash is None:
                raise ObjectNotFound(digest) from None
            return self._stat_at(digest, in_trash)

    def _stat_at(self, digest: str, key: str) -> ObjectInfo:
        encoding, size = objects.unpack_header(
            self.backend.read_range(key, 0, objects.HEADER_SIZE), digest
        )
        return ObjectInfo(digest, size, self.backend.size(key), objects.ENCODINGS[encoding])

    def iter_digests(self) -> Iterator[str]:
        """Every object's digest (loose, packed, or in gc's trash), each once."""
        self.packs.refresh()
        seen = self.loose_digests() | self.packs.digests()
        seen.update(
            d for key in self.backend.list(layout.TRASH) if (d := layout.trashed_digest(key))
        )
        yield from seen

    def delete(self, digest: str) -> None:
        """Remove the object. Anything still referencing it will fail to resolve."""
        digest = parse_digest(digest)
        try:
            self.backend.delete(layout.object_key(digest))
        except ObjectNotFound:
            if digest in self.packs:
                raise CasError(f"{digest} is packed: garbage collection removes it") from None
            raise ObjectNotFound(digest) from None

    # -- trees (conveniences over casstore.trees) -----------------------------

    def put_tree(
        self,
        source: str | os.PathLike[str],
        *,
        max_bytes: int | None = None,
        progress: Progress | None = None,
    ) -> TreeInfo:
        """Store a snapshot (folder, zip, tar, tar.gz, tar.zst, or ``-`` for a tar on
        stdin) as a tree: every file as a blob, then the tree record."""
        from casstore.config import TREE_MAX_BYTES, parse_size
        from casstore.trees.ingest import put_tree

        if max_bytes is None:
            max_bytes = parse_size(self.config.file.tree.max_bytes, TREE_MAX_BYTES)
        return put_tree(
            self, source, max_bytes=max_bytes, progress=progress, limits=self.tree_limits
        )

    def get_tree(
        self,
        digest: str,
        dest: str | os.PathLike[str],
        *,
        format: str | None = None,
        force: bool = False,
    ) -> str:
        """Materialise a tree as a folder or an archive (format from ``dest``'s suffix)."""
        from casstore.trees.checkout import get_tree

        return get_tree(
            self, parse_digest(digest), dest, fmt=format, force=force, level=self.compression_level
        )
