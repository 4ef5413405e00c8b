"""What the tree code needs from a store: a small reader/writer protocol.

:class:`casstore.store.objects.Store` satisfies both; so can anything else
that stores and verifies objects by digest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from casstore.format.objects import Readable
from casstore.format.reader import VerifyingReader
from casstore.format.tree import Limits

#: What :meth:`ObjectReader.read_many` returns: a context giving ``(digest, content)``.
Contents = AbstractContextManager[Iterator[tuple[str, bytes]]]


class ObjectReader(Protocol):
    @property
    def tree_limits(self) -> Limits:
        """How large a tree may be read."""
        ...

    def open(self, digest: str) -> VerifyingReader:
        """A stream of the object's content that verifies it when read to the end."""
        ...

    def get_bytes(self, digest: str) -> bytes:
        """The whole (small) content, verified."""
        ...

    def read_many(self, digests: Iterable[str]) -> Contents:
        """Each distinct (small) object's content, verified, as ``(digest, content)`` in
        the order that reads them fastest (a folder's files are written in it; an
        archive's are put back in path order); a context (leaving it stops the reading)."""
        ...

    def read_each(self, digests: Iterable[str], use: Callable[[str, bytes], None]) -> None:
        """``use(digest, content)`` for each distinct (small) object, verified, on the
        reading threads, in any order; the first error stops the reading and is raised."""
        ...

    def chunk_list(self, digest: str) -> list[tuple[str, int]] | None:
        """The chunks (digest, size) of a chunked object; None for any other object."""
        ...

    def get_record(self, digest: str) -> bytes:
        """A record's content, verified, within :attr:`tree_limits`."""
        ...


class BatchWriter(Protocol):
    def put_stream(
        self, stream: Readable, *, size: int | None = None, expected: str | None = None
    ) -> str:
        """Store ``size`` bytes of ``stream``; returns the digest."""
        ...

    def put_buffer(self, data: bytes | memoryview) -> str:
        """Store content already in memory, without copying it; returns the digest."""
        ...

    def flush(self) -> None:
        """Publish what was stored so far (durably)."""
        ...


class StoredInfo(Protocol):
    @property
    def digest(self) -> str: ...

    @property
    def size(self) -> int: ...


class ObjectWriter(Protocol):
    def batch(self) -> AbstractContextManager[BatchWriter]:
        """A batch whose objects are published together."""
        ...

    def put_bytes(self, data: bytes) -> StoredInfo:
        """Store one object on its own."""
        ...
