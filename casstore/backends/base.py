"""The backend contract: a handful of primitives over ``/``-separated keys.

Everything else (objects, refs, verification) is built on these by
:class:`casstore.store.objects.Store`, so a new backend implements only this.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from casstore.errors import BackendError, CasError, ObjectNotFound
from casstore.fileio import temp_file


@dataclass(frozen=True)
class KeyInfo:
    key: str
    size: int
    #: Last modification, as a POSIX timestamp.
    mtime: float


class Backend(ABC):
    """Keys to bytes. Missing keys raise ``ObjectNotFound``; other failures ``BackendError``."""

    url: str
    #: False where every request has a real cost (S3): then listings replace many checks.
    requests_are_cheap = True

    @contextmanager
    def _translated(self, what: str, *, missing: str | None = None) -> Iterator[None]:
        """Turn a third-party error raised inside into casstore's (:meth:`_translate`),
        once, here; casstore's own pass unchanged."""
        try:
            yield
        except CasError:
            raise
        except Exception as exc:
            raise self._translate(exc, what, missing) from exc

    def _translate(self, exc: Exception, what: str, missing: str | None) -> CasError:
        """The casstore error for ``exc``; ``missing`` names the key a not-found means."""
        return BackendError(f"{what}: {type(exc).__name__}: {exc}")

    @abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A readable stream of the bytes under ``key``."""

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as f:
            return f.read()

    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of ``key``; fewer at its end."""
        with self.open_read(key) as f:
            f.seek(start)
            return f.read(end - start)

    def mapped(self, key: str) -> memoryview | None:
        """The bytes under ``key`` mapped into memory, where the backend can (a local
        file: pages are read as they are touched); None elsewhere, and read instead."""
        return None

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Atomically create or replace ``key`` (refs and the marker)."""

    @abstractmethod
    def publish(self, local_path: Path, key: str) -> bool:
        """Atomically store the file at ``local_path`` under ``key`` unless it is there.

        Takes ownership of ``local_path`` (it is moved or removed). Returns
        False when ``key`` already existed and nothing was written.
        """

    def create_many(self, items: Sequence[tuple[str, bytes]]) -> list[bool]:
        """Atomically create each small ``(key, data)`` unless the key exists.

        Returns, per item, whether it was written. Backends with per-request
        latency send them concurrently.
        """
        created = []
        for key, data in items:
            with temp_file(self.staging_dir()) as (f, tmp):
                try:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                except OSError as exc:
                    raise BackendError(f"cannot write {key}: {exc.strerror or exc}") from exc
                created.append(self.publish(tmp, key))
        return created

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    def exists_many(self, keys: Sequence[str]) -> list[bool]:
        """Presence of each key. Backends with per-request latency check them concurrently."""
        return [self.exists(key) for key in keys]

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; ``ObjectNotFound`` when it is not there."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Every key below the folder ``prefix``, recursively, in no particular order."""

    @abstractmethod
    def list_detailed(self, prefix: str) -> Iterator[KeyInfo]:
        """Like :meth:`list`, with each key's size and modification time."""

    def delete_many(self, keys: Sequence[str]) -> None:
        """Remove every key; absent ones are ignored. Batched where the backend can."""
        for key in keys:
            with contextlib.suppress(ObjectNotFound):
                self.delete(key)

    def move(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` (replacing it); the moved key's time becomes now."""
        self.write_bytes(dst, self.read_bytes(src))
        self.delete(src)

    def leftovers(self, before: float) -> Sequence[KeyInfo]:
        """What writers that died left behind, untouched since ``before`` (a POSIX time):
        temp files of a local store, incomplete multipart uploads on S3. Nothing reads
        them; only gc removes them (:meth:`remove_leftovers`)."""
        return []

    def remove_leftovers(self, leftovers: Sequence[KeyInfo]) -> None:  # noqa: B027
        """Remove what :meth:`leftovers` found (a backend that finds none has none)."""

    def create_container(self) -> bool:
        """Create what holds the store (an S3 bucket) when the backend has one and it is
        missing; returns whether it was created. Folders need nothing."""
        return False

    @abstractmethod
    def staging_dir(self) -> Path:
        """A local folder for temp files that ``publish`` can take cheaply."""
