"""A backend that refuses every write: stores opened with ``--read-only``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, NoReturn

from casstore.backends.base import Backend, KeyInfo
from casstore.errors import ReadOnlyStore

#: What a write under each top folder is, in the words of the command that does it.
_OPERATIONS = {
    "objects": "put",
    "packs": "put",
    "index": "put",
    "refs": "set a ref (tag)",
    "trash": "gc",
    "locks": "gc",
    "quarantine": "fsck's quarantine",
    "casstore.json": "init",
}


def _operation(key: str) -> str:
    return _OPERATIONS.get(key.split("/", 1)[0], "write")


class ReadOnlyBackend(Backend):
    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.url = inner.url
        self.requests_are_cheap = inner.requests_are_cheap

    def _refuse(self, key: str) -> NoReturn:
        raise ReadOnlyStore(f"{self.url} is opened read-only: refusing to {_operation(key)}")

    def open_read(self, key: str) -> BinaryIO:
        return self.inner.open_read(key)

    def read_bytes(self, key: str) -> bytes:
        return self.inner.read_bytes(key)

    def read_range(self, key: str, start: int, end: int) -> bytes:
        return self.inner.read_range(key, start, end)

    def mapped(self, key: str) -> memoryview | None:
        return self.inner.mapped(key)

    def write_bytes(self, key: str, data: bytes) -> None:
        self._refuse(key)

    def publish(self, local_path: Path, key: str) -> bool:
        local_path.unlink(missing_ok=True)
        self._refuse(key)

    def create_many(self, items: Sequence[tuple[str, bytes]]) -> list[bool]:
        self._refuse(items[0][0] if items else "objects")

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def exists_many(self, keys: Sequence[str]) -> list[bool]:
        return self.inner.exists_many(keys)

    def size(self, key: str) -> int:
        return self.inner.size(key)

    def delete(self, key: str) -> None:
        self._refuse(key)

    def delete_many(self, keys: Sequence[str]) -> None:
        self._refuse(keys[0] if keys else "objects")

    def move(self, src: str, dst: str) -> None:
        self._refuse(src)

    def list(self, prefix: str) -> Iterator[str]:
        return self.inner.list(prefix)

    def list_detailed(self, prefix: str) -> Iterator[KeyInfo]:
        return self.inner.list_detailed(prefix)

    def leftovers(self, before: float) -> Sequence[KeyInfo]:
        return self.inner.leftovers(before)

    def remove_leftovers(self, leftovers: Sequence[KeyInfo]) -> None:
        if leftovers:
            self._refuse(leftovers[0].key)

    def staging_dir(self) -> Path:
        return self.inner.staging_dir()
