"""A store in a local folder: temp file, fsync, rename (:mod:`casstore.fileio`).

Files get the umask's mode; objects, packs and indexes, which never change, are
read-only (as git's objects are); refs, which move, are not. Temp files start with a dot,
and no key does, so listings skip them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from casstore.backends.base import Backend, KeyInfo
from casstore.errors import BackendError, ObjectNotFound
from casstore.fileio import TEMP_MARK, atomic_write, file_mode, fsync_dir
from casstore.format import layout


class LocalBackend(Backend):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise BackendError(f"cannot read {key}: {exc.strerror or exc}") from exc

    def mapped(self, key: str) -> memoryview | None:
        import mmap

        try:
            with open(self._path(key), "rb") as f:
                if os.fstat(f.fileno()).st_size == 0:
                    return None
                return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise BackendError(f"cannot read {key}: {exc.strerror or exc}") from exc

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path) as f:
                f.write(data)
        except OSError as exc:
            raise BackendError(f"cannot write {key}: {exc.strerror or exc}") from exc

    def publish(self, local_path: Path, key: str) -> bool:
        path = self._path(key)
        try:
            if path.exists():
                local_path.unlink()
                return False
            path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(local_path, file_mode(read_only=layout.immutable(key)))
            # Two writers racing here both rename complete, identical content: harmless.
            os.replace(local_path, path)
            fsync_dir(path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                local_path.unlink()
            raise BackendError(f"cannot store {key}: {exc.strerror or exc}") from exc
        return True

    def exists(self, key: str) -> bool:
        # os.path, not pathlib: this runs once per file of a snapshot.
        return os.path.isfile(os.path.join(self.url, key))

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise BackendError(f"cannot delete {key}: {exc.strerror or exc}") from exc

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        for folder, _dirs, files in os.walk(base):
            rel = Path(folder).relative_to(self.root).as_posix()
            for name in files:
                if not name.startswith("."):
                    yield f"{rel}/{name}"

    def list_detailed(self, prefix: str) -> Iterator[KeyInfo]:
        base = self._path(prefix)
        for folder, _dirs, files in os.walk(base):
            rel = Path(folder).relative_to(self.root).as_posix()
            for name in files:
                if name.startswith("."):
                    continue
                try:
                    st = os.stat(os.path.join(folder, name))
                except FileNotFoundError:
                    continue  # removed while listing
                yield KeyInfo(f"{rel}/{name}", st.st_size, st.st_mtime)

    def move(self, src: str, dst: str) -> None:
        source, target = self._path(src), self._path(dst)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            # A rename keeps the old time; a move is dated now, as on S3.
            os.utime(target)
            fsync_dir(target.parent)
        except (FileNotFoundError, NotADirectoryError):
            if not source.exists():
                raise ObjectNotFound(src) from None
            raise
        except OSError as exc:
            raise BackendError(f"cannot move {src}: {exc.strerror or exc}") from exc

    def leftovers(self, before: float) -> Sequence[KeyInfo]:
        found: list[KeyInfo] = []
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if not (name.startswith(".") and TEMP_MARK in name):
                    continue  # only fileio's temp files: never a key, never the user's
                path = Path(folder, name)
                try:
                    info = path.stat()
                except FileNotFoundError:
                    continue  # published or removed while listing
                if info.st_mtime < before:
                    key = path.relative_to(self.root).as_posix()
                    found.append(KeyInfo(key, info.st_size, info.st_mtime))
        return found

    def remove_leftovers(self, leftovers: Sequence[KeyInfo]) -> None:
        for leftover in leftovers:
            path = self._path(leftover.key)
            if path.name.startswith(".") and TEMP_MARK in path.name:
                path.unlink(missing_ok=True)

    def staging_dir(self) -> Path:
        path = self.root / layout.TMP
        path.mkdir(parents=True, exist_ok=True)
        return path
