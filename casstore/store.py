"""The store: content-addressed objects and named refs over a backend.

Every read re-hashes what it returns; every write is published atomically by
the backend. Keys come from :mod:`casstore.layout` only.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, cast

from casstore import layout, objectfile
from casstore.backends import Backend, open_backend
from casstore.config import Config, load_config, resolve_location
from casstore.digest import (
    HEX_LENGTH,
    PREFIX,
    hash_bytes,
    is_hex,
    looks_like_digest,
    parse_digest,
    parse_prefix,
)
from casstore.errors import (
    BackendError,
    CasError,
    IntegrityError,
    InvalidDigest,
    NotAStore,
    ObjectNotFound,
    ReadOnlyStore,
)
from casstore.objectfile import CHUNK_SIZE, Progress, Readable, VerifyingReader
from casstore.packs import MAX_PACKED_SIZE, PackIndex, PackWriter
from casstore.refs import validate_ref_name

if TYPE_CHECKING:
    from casstore.cache import ObjectCache
    from casstore.snapshot import TreeInfo


#: Above this many digests, one listing of loose objects beats a HEAD each (on S3).
LIST_INSTEAD_OF_HEAD = 1000


@dataclass(frozen=True)
class ObjectInfo:
    """An object's digest, content size, size as stored, and encoding (``raw`` or ``zstd``)."""

    digest: str
    size: int
    stored_size: int
    encoding: str


class Store:
    """A content-addressed store. Create with :func:`open_store`."""

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
        self.packs = PackIndex(backend)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @property
    def read_only(self) -> bool:
        from casstore.backends.readonly import ReadOnlyBackend

        return isinstance(self.backend, ReadOnlyBackend)

    def require_writable(self) -> None:
        """Raise ReadOnlyStore now, before work that would end in a refused write."""
        if self.read_only:
            raise ReadOnlyStore(f"{self.url} is opened read-only: refusing to store objects")

    @property
    def url(self) -> str:
        return self.backend.url

    # -- the marker ---------------------------------------------------------

    def check_marker(self) -> None:
        """Raise :class:`NotAStore` unless the backend holds a store this version reads."""
        try:
            raw = self.backend.read_bytes(layout.MARKER)
        except ObjectNotFound:
            raise NotAStore(
                f"{self.url} is not a casstore store (no {layout.MARKER}); create one with cas init"
            ) from None
        try:
            marker = json.loads(raw)
            version = marker["casstore_format"]
        except (ValueError, KeyError, TypeError):
            raise NotAStore(f"{self.url}: {layout.MARKER} is not a casstore marker") from None
        if not isinstance(version, int) or version > layout.FORMAT_VERSION:
            raise NotAStore(
                f"{self.url} has store format {version!r}; this casstore reads format "
                f"{layout.FORMAT_VERSION}: upgrade casstore"
            )

    def initialize(self) -> bool:
        """Write the marker unless there is one. Returns False when it was a store already."""
        try:
            self.check_marker()
            return False
        except NotAStore:
            if self.backend.exists(layout.MARKER):
                raise
        marker = {
            "casstore_format": layout.FORMAT_VERSION,
            "digest": "blake3",
            "objects": f"{layout.OBJECTS}/<2 hex>/<62 hex>",
        }
        self.backend.write_bytes(layout.MARKER, (json.dumps(marker, indent=2) + "\n").encode())
        return True

    # -- writing ------------------------------------------------------------

    def put_bytes(self, data: bytes) -> ObjectInfo:
        """Store ``data``; returns its :class:`ObjectInfo`. Present objects are not rewritten."""
        digest = hash_bytes(data)
        if self.has(digest):
            return self.stat(digest)
        payload, encoding = objectfile.encode_bytes(data, self.compression_level)
        fd, name = tempfile.mkstemp(dir=self.backend.staging_dir(), prefix=".tmp-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(objectfile.pack_header(encoding, len(data)))
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            self.backend.publish(tmp, layout.object_key(digest))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return ObjectInfo(
            digest,
            len(data),
            objectfile.HEADER_SIZE + len(payload),
            objectfile.ENCODINGS[encoding],
        )

    def put_many(self, items: Iterable[bytes]) -> list[str]:
        """Store many in-memory objects in one batch; returns their digests.

        Small ones go into a pack, so thousands cost a few requests (or syncs)
        instead of one each.
        """
        with self.batch() as batch:
            return [batch.put_bytes(data) for data in items]

    def batch(self) -> Batch:
        """A context for storing many objects: small ones are packed, and the
        pack is published (durably) when the context exits without error."""
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

        An object already present is not sent again; ``check_present=False``
        skips that check for callers that just made it (in a batch). With
        ``expected``, content that hashes to anything else raises IntegrityError
        and is not stored.
        """
        self.require_writable()
        fd, name = tempfile.mkstemp(dir=self.backend.staging_dir(), prefix=".tmp-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "w+b") as f:
                encoded = objectfile.write_object(
                    stream,
                    cast(BinaryIO, _Staging(f)),
                    level=self.compression_level,
                    threads=self.compression_threads,
                    progress=progress,
                )
                try:
                    f.flush()
                    os.fsync(f.fileno())
                except OSError as exc:
                    raise _staging_error(exc) from exc
            _check_expected(encoded.digest, expected)
            key = layout.object_key(encoded.digest)
            if not (check_present and self.has(encoded.digest)):
                self.backend.publish(tmp, key)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return ObjectInfo(encoded.digest, encoded.size, encoded.stored_size, encoded.encoding)

    def put_file(
        self, path: str | os.PathLike[str], *, progress: Progress | None = None
    ) -> ObjectInfo:
        """Store the file at ``path``."""
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size <= CHUNK_SIZE:
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
            return self.cache.open(digest, lambda: self._open_stored(digest))
        return self._open_stored(digest)

    def _open_stored(self, digest: str, *, retry: bool = True) -> VerifyingReader:
        where = self.packs.get(digest)
        if where is not None:
            try:
                content = self.packs.read(digest, where)
            except ObjectNotFound:
                if not retry:
                    raise IntegrityError(f"{digest}: its pack {where.pack} is missing") from None
                # gc rewrote the pack since the indexes were read: look again.
                self.packs.refresh()
                return self._open_stored(digest, retry=False)
            header = objectfile.pack_header(objectfile.RAW, where.length)
            return VerifyingReader(io.BytesIO(header + content), digest)
        try:
            stored = self.backend.open_read(self._key(digest))
        except ObjectNotFound:
            if not retry:
                raise ObjectNotFound(digest) from None
            # Another writer may have packed it since the indexes were read.
            self.packs.refresh()
            if digest not in self.packs:
                return self._from_trash(digest)
            return self._open_stored(digest, retry=False)
        try:
            return VerifyingReader(stored, digest, self._open_chunk)
        except BaseException:
            stored.close()
            raise

    def _open_chunk(self, digest: str) -> io.RawIOBase:
        return self._open_stored(digest)

    def chunk_list(self, digest: str) -> list[tuple[str, int]] | None:
        """The chunks (digest, size) of a chunked object; None for any other object."""
        digest = parse_digest(digest)
        if digest in self.packs:
            return None
        key = self._key(digest)
        encoding, size = objectfile.unpack_header(
            self.backend.read_range(key, 0, objectfile.HEADER_SIZE), digest
        )
        if encoding != objectfile.CHUNKED:
            return None
        body = self.backend.read_bytes(key)[objectfile.HEADER_SIZE :]
        return objectfile.decode_chunk_list(body, size, digest)

    def _from_trash(self, digest: str) -> VerifyingReader:
        """An object gc moved to the trash while a writer was referencing it: readable
        (verified as ever) until the next gc restores it."""
        key = self.trashed([digest]).get(digest)
        if key is None:
            raise ObjectNotFound(digest)
        stored = self.backend.open_read(key)
        try:
            return VerifyingReader(stored, digest, self._open_chunk)
        except BaseException:
            stored.close()
            raise

    def trashed(self, digests: Iterable[str]) -> dict[str, str]:
        """Which of ``digests`` are in gc's trash (one listing): digest -> its trash key."""
        wanted = set(digests)
        found: dict[str, str] = {}
        if not wanted:
            return found
        for key in self.backend.list(layout.TRASH):
            digest = layout.trashed_digest(key)
            if digest in wanted:
                found.setdefault(digest, key)
        return found

    def _key(self, digest: str) -> str:
        return layout.object_key(digest)

    def get_bytes(self, digest: str) -> bytes:
        """The whole content, verified. For large objects use :meth:`open` or :meth:`get_file`."""
        with self.open(digest) as reader:
            return reader.readall()

    def copy_to(self, digest: str, dest: IO[bytes], *, progress: Progress | None = None) -> int:
        """Write the content to ``dest``; returns the size. Raises at the end if it is wrong.

        Bytes reach ``dest`` before the end is verified: write to something
        you discard on error (see :meth:`get_file`).
        """
        with self.open(digest) as reader:
            return reader.copy_to(dest, progress)

    def get_file(
        self,
        digest: str,
        path: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
    ) -> int:
        """Write the content to ``path`` atomically, only once verified. Returns the size."""
        target = Path(path)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.tmp-")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                size = self.copy_to(digest, f, progress=progress)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return size

    def verify(self, digest: str, *, progress: Progress | None = None) -> ObjectInfo:
        """Re-hash the stored object; raises :class:`IntegrityError` when it is wrong."""
        digest = parse_digest(digest)
        # Never from the cache: verify checks what this store holds.
        with self._open_stored(digest) as reader:
            buffer = bytearray(CHUNK_SIZE)
            while n := reader.readinto(buffer):
                if progress is not None:
                    progress(n)
        try:
            return self.stat(digest)
        except ObjectNotFound:  # read from gc's trash
            return ObjectInfo(digest, reader.size, reader.size, reader.encoding)

    def has(self, digest: str) -> bool:
        digest = parse_digest(digest)
        return digest in self.packs or self.backend.exists(self._key(digest))

    def missing(self, digests: Iterable[str]) -> list[str]:
        """The digests not in the store, in order; checked in one batch.

        Packed objects cost nothing to check. On S3 the rest are one HEAD each,
        concurrent, or one listing when that takes fewer requests.
        """
        wanted = [d for d in (parse_digest(d) for d in digests) if d not in self.packs]
        if not wanted:
            return []
        if not self.backend.requests_are_cheap and len(wanted) > LIST_INSTEAD_OF_HEAD:
            loose = self.loose_digests()
            return [d for d in wanted if d not in loose]
        present = self.backend.exists_many([self._key(d) for d in wanted])
        return [d for d, here in zip(wanted, present, strict=True) if not here]

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
        key = self._key(digest)
        header = self.backend.read_range(key, 0, objectfile.HEADER_SIZE)
        encoding, size = objectfile.unpack_header(header, digest)
        return ObjectInfo(digest, size, self.backend.size(key), objectfile.ENCODINGS[encoding])

    def iter_digests(self) -> Iterator[str]:
        """Every object's digest (loose or packed), in no particular order."""
        loose = self.loose_digests()
        yield from loose
        self.packs.refresh()
        yield from (d for d in self.packs.digests() if d not in loose)

    def delete(self, digest: str) -> None:
        """Remove the object. Anything still referencing it will fail to resolve."""
        digest = parse_digest(digest)
        try:
            self.backend.delete(self._key(digest))
        except ObjectNotFound:
            if digest in self.packs:
                raise CasError(
                    f"{digest} is in a pack: packed objects are removed by garbage collection"
                ) from None
            raise ObjectNotFound(digest) from None

    # -- trees --------------------------------------------------------------

    def put_tree(
        self,
        source: str | os.PathLike[str],
        *,
        max_bytes: int | None = None,
        progress: Progress | None = None,
    ) -> TreeInfo:
        """Store a snapshot (folder, zip, tar, tar.gz, tar.zst, or ``-`` for a tar on
        stdin) as a tree: every file as a blob, then the tree record."""
        from casstore.snapshot import put_tree

        return put_tree(self, source, max_bytes=self._max_bytes(max_bytes), progress=progress)

    def get_tree(
        self,
        digest: str,
        dest: str | os.PathLike[str],
        *,
        format: str | None = None,
        force: bool = False,
    ) -> str:
        """Materialise a tree as a folder or an archive (format from ``dest``'s suffix)."""
        from casstore.materialize import get_tree

        return get_tree(self, parse_digest(digest), dest, fmt=format, force=force)

    def _max_bytes(self, given: int | None) -> int:
        from casstore.config import parse_size

        return given if given is not None else parse_size(self.config.file.tree.max_bytes)

    # -- names --------------------------------------------------------------

    def resolve(self, spec: str) -> str:
        """The digest that ``spec`` names: a digest, a unique prefix (>= 8 hex) or a tag."""
        if not looks_like_digest(spec):
            try:
                validate_ref_name(spec)
            except CasError:
                raise InvalidDigest(
                    f"{spec!r} is neither a digest (blake3:<64 hex>), "
                    "a prefix of at least 8 hex characters, nor a tag name"
                ) from None
            try:
                return self.tag_target(spec)
            except ObjectNotFound:
                if is_hex(spec):
                    parse_prefix(spec)  # a short hex string: say it is too short, not "no tag"
                raise
        hexpart = parse_prefix(spec)
        if len(hexpart) == HEX_LENGTH:
            return PREFIX + hexpart
        loose = (layout.digest_of_key(k) for k in self.backend.list(layout.prefix_dir(hexpart)))
        matches = sorted(
            {
                digest
                for digest in (*loose, *self.packs.digests())
                if digest and digest[len(PREFIX) :].startswith(hexpart)
            }
        )
        if not matches:
            raise ObjectNotFound(spec, f"no object matches prefix {hexpart}")
        if len(matches) > 1:
            raise InvalidDigest(f"prefix {hexpart} is ambiguous: {len(matches)} objects match")
        return matches[0]

    def tag(self, name: str, digest: str) -> None:
        """Point tag ``name`` at ``digest`` (which must be in the store)."""
        validate_ref_name(name)
        digest = parse_digest(digest)
        # An object in gc's trash counts: tagging it is what makes gc restore it.
        if not self.has(digest) and not self.trashed([digest]):
            raise ObjectNotFound(digest, f"cannot tag {name}: not found: {digest}")
        self.require_writable()
        self.backend.write_bytes(layout.tag_key(name), (digest + "\n").encode())

    def untag(self, name: str) -> None:
        validate_ref_name(name)
        try:
            self.backend.delete(layout.tag_key(name))
        except ObjectNotFound:
            raise ObjectNotFound(name, f"no tag named {name}") from None

    def tag_target(self, name: str) -> str:
        validate_ref_name(name)
        try:
            raw = self.backend.read_bytes(layout.tag_key(name))
        except ObjectNotFound:
            raise ObjectNotFound(name, f"no tag named {name}") from None
        try:
            return parse_digest(raw.decode("ascii"))
        except (UnicodeDecodeError, InvalidDigest):
            raise IntegrityError(f"tag {name} is corrupt: it holds no digest") from None

    def tags(self) -> dict[str, str]:
        """Every tag and the digest it names, sorted by name."""
        prefix = len(layout.TAGS) + 1
        names = sorted(key[prefix:] for key in self.backend.list(layout.TAGS))
        return {name: self.tag_target(name) for name in names}


class _Staging:
    """The temp file an object is encoded into. Its write errors (a full disk) are the
    store's, never to be mistaken for errors reading the source."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f

    def write(self, data: bytes) -> int:
        try:
            return self._f.write(data)
        except OSError as exc:
            raise _staging_error(exc) from exc

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as exc:
            raise _staging_error(exc) from exc


def _staging_error(exc: OSError) -> BackendError:
    return BackendError(f"cannot write a temp file for the store: {exc.strerror or exc}")


#: Objects stored through a batch with a known size of at least this are chunked.
CHUNKED_MIN = 8 << 20
#: FastCDC's target chunk size (the minimum is a quarter, the maximum four times).
CDC_AVERAGE = 1 << 20


def _check_expected(digest: str, expected: str | None) -> None:
    if expected is not None and digest != expected:
        raise IntegrityError(f"content expected to be {expected} hashes to {digest}")


class Batch:
    """Many writes at once (see :meth:`Store.batch`): small objects go into packs,
    whose blocks are compressed on every core while the caller reads on.

    Objects become visible when the batch is flushed: on leaving the ``with``
    block, or with :meth:`flush`. A batch that fails publishes nothing more.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._writer = PackWriter(store.backend, store.packs, store.compression_level)
        self._loose: set[str] | None = None
        #: Chunk lists waiting for their chunks to be published: digest -> stored bytes.
        self._lists: dict[str, bytes] = {}

    def _present(self, digest: str) -> bool:
        if digest in self.store.packs or self._writer.holds(digest):
            return True
        if self.store.backend.requests_are_cheap:
            return self.store.backend.exists(layout.object_key(digest))
        if self._loose is None:  # one listing instead of a request per object
            self._loose = self.store.loose_digests()
        return digest in self._loose

    def put_bytes(self, data: bytes, *, known_absent: bool = False) -> str:
        """Store ``data``; returns its digest. Small objects are published by :meth:`flush`."""
        if len(data) > MAX_PACKED_SIZE:
            return self.store.put_bytes(data).digest
        digest = hash_bytes(data)
        if known_absent or not self._present(digest):
            self._writer.add(digest, data)
        return digest

    def put_file(self, path: str | os.PathLike[str], *, progress: Progress | None = None) -> str:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > MAX_PACKED_SIZE:
                return self.store.put_stream(f, progress=progress).digest
            data = f.read()
        if progress is not None:
            progress(len(data))
        return self.put_bytes(data)

    def put_stream(
        self, stream: Readable, *, size: int | None = None, expected: str | None = None
    ) -> str:
        """Store a stream; pass ``size`` when known so small ones are packed and large
        ones (``CHUNKED_MIN`` and more) are stored as content-defined chunks.

        With ``expected``, content that hashes to anything else raises
        IntegrityError and is not stored."""
        if size is not None and size >= CHUNKED_MIN:
            return self.put_chunked(stream, expected=expected)
        if size is not None and size <= MAX_PACKED_SIZE:
            data = stream.read(size)
            if expected is not None:
                _check_expected(hash_bytes(data), expected)
            return self.put_bytes(data)
        return self.store.put_stream(stream, expected=expected).digest

    def put_chunked(self, stream: Readable, *, expected: str | None = None) -> str:
        """Store a stream as content-defined chunks (each an object, deduplicated with
        every other) plus a chunk list under the digest of the whole content.

        The list is published by :meth:`flush`, after its chunks.
        """
        from blake3 import blake3
        from pyfastcdc import FastCDC

        hasher = blake3(max_threads=blake3.AUTO)
        chunks: list[tuple[str, int]] = []
        for piece in FastCDC(CDC_AVERAGE).cut_stream(stream):
            data = bytes(piece.data)
            hasher.update(data)
            chunks.append((self.put_bytes(data), len(data)))
        digest = PREFIX + hasher.hexdigest()
        _check_expected(digest, expected)
        if not self._present(digest):
            self._lists[digest] = objectfile.encode_chunk_list(chunks)
        return digest

    def flush(self) -> None:
        self._writer.flush()
        if self._lists:
            # Only now are all their chunks visible.
            keys = [(layout.object_key(d), data) for d, data in self._lists.items()]
            self.store.backend.create_many(keys)
            self._lists.clear()

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        failed = exc is not None
        try:
            if not failed:
                self.flush()
        except BaseException:
            failed = True
            raise
        finally:
            self._writer.close(discard=failed)


def _attach_cache(store: Store) -> None:
    from casstore.backends.local import LocalBackend
    from casstore.cache import ObjectCache, default_cache_dir
    from casstore.config import normalize_url, parse_size

    section = store.config.file.cache
    if isinstance(store.backend, LocalBackend) or not section.enabled:
        return
    folder = (
        normalize_url(section.dir, store.config.base_dir) if section.dir else default_cache_dir()
    )
    cache_store = Store(open_backend(str(folder)), config=store.config)
    cache_store.initialize()
    store.cache = ObjectCache(cache_store, parse_size(section.max_size))


def _build(url: str | None, config: Config | None, read_only: bool = False) -> tuple[Store, bool]:
    config = config if config is not None else load_config()
    location = resolve_location(url, config)
    backend = open_backend(
        location.url,
        storage_options=config.storage_options(location.url),
        concurrency=config.file.s3.concurrency,
    )
    section = config.file.store
    if read_only or section.read_only:
        from casstore.backends.readonly import ReadOnlyBackend

        backend = ReadOnlyBackend(backend)
    store = Store(
        backend,
        compression_level=section.compression_level,
        compression_threads=section.compression_threads,
        config=config,
    )
    return store, location.embedded


def open_store(
    url: str | None = None,
    *,
    config: Config | None = None,
    cache: bool = True,
    read_only: bool = False,
) -> Store:
    """Open the store at ``url``, else ``$CAS_STORE``, else the one ``store.toml`` names.

    ``store.toml`` is looked for in the current folder and its parents; with
    no ``[store] url`` it names the embedded store ``.cas/`` beside it, which
    is created on first use. Any other location must already be a store
    (:func:`init_store`, ``cas init``): otherwise :class:`NotAStore`.

    A store that is not on a local disk reads through a local cache (``[cache]``
    in store.toml) unless ``cache`` is false. A store opened ``read_only`` (or
    with ``[store] read_only``) refuses every write with :class:`ReadOnlyStore`.
    """
    store, embedded = _build(url, config, read_only)
    if embedded and not store.read_only:
        store.initialize()
    else:
        store.check_marker()
    if cache:
        _attach_cache(store)
    return store


def init_store(url: str | None = None, *, config: Config | None = None) -> tuple[Store, bool]:
    """Create the store (chosen as :func:`open_store` does) unless it exists.

    Returns the store and whether it was created.
    """
    store, _embedded = _build(url, config)
    return store, store.initialize()
