"""Bundles: the closure of some roots in one file, to share a run without a shared store.

A bundle (``docs/FORMAT.md``) is a zstd-compressed tar: first
``casstore-bundle.json`` (the roots, and every object's digest and size, in an
order where records follow what they reference), then ``objects/<hex>`` per
object with its plain content. Importing verifies the whole file before storing
anything, and every object again as it is stored.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import msgspec

from casstore.errors import ArchiveError, BundleError, DestinationError
from casstore.fileio import atomic_write
from casstore.format.digest import PREFIX
from casstore.format.manifest import Ref
from casstore.format.records import HEAD_BYTES, MAX_RECORD_BYTES, record_kind
from casstore.graph.closure import walk
from casstore.trees.archives import Prefixed
from casstore.trees.tarstream import TarHeader, TarReader

if TYPE_CHECKING:
    from casstore.store.objects import Store

FORMAT = "casstore-bundle"
VERSION = 1
HEADER_NAME = "casstore-bundle.json"
_MEMBER = re.compile(r"objects/([0-9a-f]{64})")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: The most a bundle's header may hold: about 350,000 objects listed (90 bytes each),
#: decoded in well under 100 MB. A closure larger than that takes several bundles.
MAX_HEADER_BYTES = 32 << 20


class Header(msgspec.Struct, frozen=True):
    format: str
    version: int
    roots: list[str]
    objects: list[Ref]


@dataclass
class BundleResult:
    roots: list[str]
    objects: int = 0
    size: int = 0
    #: Objects stored by the import (the others were already present).
    imported: int = 0
    imported_bytes: int = 0
    kinds: dict[str, str] = field(default_factory=dict)


def write_bundle(
    store: Store,
    roots: Sequence[str],
    out: IO[bytes],
    *,
    on_object: Callable[[int], None] | None = None,
) -> BundleResult:
    """Write the closure of ``roots`` to ``out``; every object is verified as it is read."""
    import zstandard

    closure = walk(store, roots)
    closure.require_complete(store.url)
    with ThreadPoolExecutor(max_workers=16) as pool:  # one HEAD each for loose S3 objects
        sizes = dict(zip(closure.order, pool.map(_size_of(store), closure.order), strict=True))
    header = Header(FORMAT, VERSION, list(roots), [Ref(d, sizes[d]) for d in closure.order])
    result = BundleResult(list(roots), len(closure.order), sum(sizes.values()))
    result.kinds = closure.kinds
    data = msgspec.json.encode(header)
    if len(data) > MAX_HEADER_BYTES:  # no reader would take it
        raise BundleError(
            f"the closure holds {len(header.objects)} objects, more than one bundle can list: "
            "bundle fewer roots at a time, or cas push to a store"
        )
    compressor = zstandard.ZstdCompressor(level=3, threads=-1)
    with (
        compressor.stream_writer(out, closefd=False) as zout,
        tarfile.open(fileobj=zout, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.addfile(_info(HEADER_NAME, len(data)), io.BytesIO(data))
        for digest in closure.order:
            with store.open(digest) as reader:
                tar.addfile(_info(f"objects/{digest[len(PREFIX) :]}", sizes[digest]), reader)
            if on_object is not None:
                on_object(sizes[digest])
    return result


def write_bundle_file(
    store: Store,
    roots: Sequence[str],
    path: str | os.PathLike[str],
    *,
    force: bool = False,
    on_object: Callable[[int], None] | None = None,
) -> BundleResult:
    """Write the bundle to ``path`` atomically: a failure leaves no partial file, and an
    existing file is replaced only with ``force``."""
    if os.path.exists(path) and not force:
        raise DestinationError(f"{path} exists: pass --force to replace it")
    with atomic_write(path) as out:
        return write_bundle(store, roots, out, on_object=on_object)


def _size_of(store: Store) -> Callable[[str], int]:
    return lambda digest: store.stat(digest).size


def _info(name: str, size: int) -> tarfile.TarInfo:
    # Fixed metadata: the same closure always gives the same bundle bytes.
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info


@contextmanager
def _opened(
    path: str | os.PathLike[str],
) -> Iterator[tuple[Header, Iterator[tuple[Ref, TarReader]]]]:
    """The bundle's header, and (claimed ref, reader on its data) for every object."""
    import zstandard

    with open(path, "rb") as f:
        if f.read(4) != _ZSTD_MAGIC:
            raise BundleError(f"{path}: not a casstore bundle (not zstd-compressed)")
        f.seek(0)
        try:
            with zstandard.ZstdDecompressor().stream_reader(f, closefd=False) as stream:
                reader = TarReader(stream, str(path))
                headers = reader.headers()
                first = next(headers, None)
                if first is None:
                    raise BundleError(f"{path}: an empty or truncated bundle")
                if first.name != HEADER_NAME or first.kind != "file":
                    raise BundleError(f"{path}: not a casstore bundle (no {HEADER_NAME} first)")
                if first.size > MAX_HEADER_BYTES:
                    raise BundleError(
                        f"{path}: {HEADER_NAME} claims {first.size} bytes (at most "
                        f"{MAX_HEADER_BYTES}: a bundle lists at most about 350,000 objects)"
                    )
                header = _header(reader.read(first.size), path)
                yield header, _objects(path, header, headers, reader)
        except zstandard.ZstdError as exc:
            raise BundleError(f"{path}: corrupt compressed data ({exc})") from None
        except ArchiveError as exc:
            raise BundleError(f"{path}: {exc}") from None


def _objects(
    path: str | os.PathLike[str],
    header: Header,
    headers: Iterator[TarHeader],
    reader: TarReader,
) -> Iterator[tuple[Ref, TarReader]]:
    listed = {ref.digest: ref for ref in header.objects}
    seen: set[str] = set()
    for member in headers:
        match = _MEMBER.fullmatch(member.name)
        digest = PREFIX + match.group(1) if match else ""
        if not match or member.kind != "file" or digest not in listed:
            raise BundleError(f"{path}: a foreign member {member.name!r}")
        if digest in seen:
            raise BundleError(f"{path}: {member.name!r} appears twice")
        if member.size != listed[digest].size:
            raise BundleError(f"{path}: {member.name!r} has the wrong size")
        seen.add(digest)
        yield listed[digest], reader
    absent = [d for d in listed if d not in seen]
    if absent:
        raise BundleError(
            f"{path}: truncated: {len(absent)} listed objects are missing (first {absent[0]})"
        )


def _header(data: bytes, path: str | os.PathLike[str]) -> Header:
    try:
        header = msgspec.json.decode(data, type=Header)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(f"{path}: a malformed {HEADER_NAME} ({exc})") from None
    if header.format != FORMAT or header.version != VERSION:
        raise BundleError(f"{path}: a {header.format} version {header.version}, not {FORMAT} 1")
    listed = {ref.digest for ref in header.objects}
    for root in header.roots:
        if root not in listed:
            raise BundleError(f"{path}: root {root} is not in the bundle")
    return header


class _Slice(io.RawIOBase):
    """``size`` bytes of ``f`` from where it stands."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self._f, self._left = f, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._f.read(min(len(buffer), self._left))
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)


def check_bundle(path: str | os.PathLike[str]) -> Header:
    """Read the whole bundle and re-hash every member; BundleError on the first problem."""
    from blake3 import blake3

    with _opened(path) as (header, objects):
        for ref, reader in objects:
            hasher = blake3()
            while piece := reader.view(1 << 20):  # hashed where it lies: no copy
                hasher.update(piece)
            if PREFIX + hasher.hexdigest() != ref.digest:
                raise BundleError(f"{path}: the member for {ref.digest} is corrupt")
    return header


def read_bundle(
    store: Store,
    path: str | os.PathLike[str],
    *,
    on_object: Callable[[int], None] | None = None,
) -> BundleResult:
    """Import a bundle into ``store``: all of it is verified first, then each object
    again as it is stored; records are published after everything else."""
    header = check_bundle(path)
    result = BundleResult(list(header.roots), len(header.objects))
    result.size = sum(ref.size for ref in header.objects)
    absent = set(store.missing([ref.digest for ref in header.objects]))
    # Records wait on disk, not in memory, until everything else is published.
    records: list[tuple[str, int, int]] = []
    with (
        tempfile.TemporaryFile(dir=store.backend.staging_dir()) as waiting,
        store.batch() as batch,
        _opened(path) as (_, objects),
    ):
        for ref, reader in objects:
            if ref.digest in absent:
                head = reader.read(min(ref.size, HEAD_BYTES))
                stream = io.BufferedReader(Prefixed(head, reader), 1 << 20)
                if record_kind(head) is not None and ref.size <= MAX_RECORD_BYTES:
                    records.append((ref.digest, waiting.tell(), ref.size))
                    shutil.copyfileobj(stream, waiting, 1 << 20)
                else:
                    batch.put_stream(stream, size=ref.size, expected=ref.digest)
                result.imported += 1
                result.imported_bytes += ref.size
            if on_object is not None:
                on_object(ref.size)
        batch.flush()
        for digest, offset, size in records:
            waiting.seek(offset)
            batch.put_stream(_Slice(waiting, size), size=size, expected=digest)
    return result
