"""Objects encoded into a temp file, then published. The temp file's write errors (a
full disk) are the store's, never to be mistaken for errors reading the source."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO, cast

from casstore.backends.base import Backend
from casstore.errors import BackendError, IntegrityError
from casstore.fileio import temp_file
from casstore.format import layout, objects
from casstore.format.objects import Encoded, Progress, Readable


class Staging:
    """A temp file whose write errors become :class:`BackendError`."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f

    def write(self, data: bytes) -> int:
        try:
            return self._f.write(data)
        except OSError as exc:
            raise staging_error(exc) from exc

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as exc:
            raise staging_error(exc) from exc


def staging_error(exc: OSError) -> BackendError:
    return BackendError(f"cannot write a temp file for the store: {exc.strerror or exc}")


def check_expected(digest: str, expected: str | None) -> None:
    """IntegrityError when content expected to be ``expected`` hashed to ``digest``."""
    if expected is not None and digest != expected:
        raise IntegrityError(f"content expected to be {expected} hashes to {digest}")


def _synced(f: BinaryIO) -> None:
    try:
        f.flush()
        os.fsync(f.fileno())
    except OSError as exc:
        raise staging_error(exc) from exc


def publish_bytes(
    backend: Backend, digest: str, data: bytes | memoryview, level: int
) -> tuple[int, str]:
    """Encode and publish in-memory content; returns (stored size, encoding)."""
    payload, encoding = objects.encode_bytes(data, level)
    with temp_file(backend.staging_dir()) as (f, tmp):
        try:
            f.write(objects.pack_header(encoding, len(data)))
            f.write(payload)
        except OSError as exc:
            raise staging_error(exc) from exc
        _synced(f)
        backend.publish(tmp, layout.object_key(digest))
    return objects.HEADER_SIZE + len(payload), objects.ENCODINGS[encoding]


def publish_stream(
    backend: Backend,
    stream: Readable,
    *,
    level: int,
    threads: int,
    progress: Progress | None,
    expected: str | None,
    wanted: Callable[[str], bool],
) -> Encoded:
    """Encode a stream (hashing as it goes), then publish it if ``wanted(digest)``."""
    with temp_file(backend.staging_dir()) as (f, tmp):
        encoded = objects.write_object(
            stream, cast(BinaryIO, Staging(f)), level=level, threads=threads, progress=progress
        )
        _synced(f)
        check_expected(encoded.digest, expected)
        if wanted(encoded.digest):
            backend.publish(tmp, layout.object_key(encoded.digest))
    return encoded
