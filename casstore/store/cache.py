"""A read-through cache for remote stores: a local store, size-bounded, LRU.

Objects are verified entering the cache (the remote read is re-hashed while it
is stored) and again whenever they are read from it, like any object.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from casstore.errors import ObjectNotFound
from casstore.format import layout

if TYPE_CHECKING:
    from casstore.format.reader import VerifyingReader
    from casstore.store.objects import Store

#: Eviction frees down to this fraction of the limit, so it does not run on every insert.
_LOW_WATER = 0.9


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "casstore"


class ObjectCache:
    def __init__(self, store: Store, max_size: int) -> None:
        self.store = store
        self.max_size = max_size
        self._root = Path(store.url)
        self._lock = threading.Lock()
        self._total: int | None = None

    def _path(self, digest: str) -> Path:
        return self._root / layout.object_key(digest)

    def open(self, digest: str, fetch: Callable[[], VerifyingReader]) -> VerifyingReader:
        """The object from the cache, fetching (and caching) it first if needed."""
        try:
            reader = self.store.open(digest)
        except ObjectNotFound:
            pass
        else:
            # mtime is the LRU clock: atime is often disabled (noatime).
            os.utime(self._path(digest))
            return reader
        remote = fetch()
        if remote.size > self.max_size:
            return remote  # it would evict everything and still not fit
        with remote:
            info = self.store.put_stream(remote)
        self._added(info.stored_size)
        return self.store.open(digest)

    def _added(self, stored_size: int) -> None:
        with self._lock:
            if self._total is None:
                self._total = sum(size for _mtime, size, _path in self._entries())
            else:
                self._total += stored_size
            if self._total > self.max_size:
                self._evict()

    def _entries(self) -> list[tuple[float, int, Path]]:
        found = []
        for folder, _dirs, files in os.walk(self._root / layout.OBJECTS):
            for name in files:
                path = Path(folder) / name
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                found.append((stat.st_mtime, stat.st_size, path))
        return found

    def _evict(self) -> None:
        entries = sorted(self._entries())
        total = sum(size for _mtime, size, _path in entries)
        target = self.max_size * _LOW_WATER
        for _mtime, size, path in entries:
            if total <= target:
                break
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            total -= size
        self._total = total
