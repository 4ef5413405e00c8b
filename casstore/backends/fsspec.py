"""A store at any fsspec URL (``memory://``, ``gs://``, ``az://`` ...; S3 in ``s3.py``).

fsspec and the filesystem package are imported here only, so ``cas --help``
never pays for them. Their errors are translated to casstore's at this edge.
"""

from __future__ import annotations

import datetime
import io
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, BinaryIO, cast

from casstore.backends.base import Backend, KeyInfo
from casstore.errors import BackendError, CasError, ConfigError, ObjectNotFound

_INSTALL_HINTS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
}


def _mtime(info: dict[str, Any]) -> float:
    """A listing entry's modification time: S3 says LastModified, others mtime or created."""
    for name in ("LastModified", "mtime", "created"):
        value = info.get(name)
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.UTC)
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return 0.0


class FsspecBackend(Backend):
    def __init__(self, url: str, *, storage_options: dict[str, Any]) -> None:
        import fsspec

        self.url = url.rstrip("/")
        try:
            fs, root = fsspec.core.url_to_fs(self.url, **storage_options)
        except ImportError as exc:
            scheme = url.split("://", 1)[0]
            extra = _INSTALL_HINTS.get(scheme)
            hint = f"pip install 'casstore[{extra}]'" if extra else "install its fsspec package"
            raise ConfigError(f"{scheme}:// stores need an extra package: {hint}") from exc
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"cannot open {url}: {exc}") from exc
        self.fs = fs
        self.root = cast(str, root).rstrip("/")
        # Created up front: writers on several threads share it.
        self._staging = tempfile.TemporaryDirectory(prefix="casstore-")

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _translate(self, exc: Exception, what: str, missing: str | None) -> CasError:
        """The casstore error for ``exc``; ``missing`` names the key a not-found means."""
        if isinstance(exc, FileNotFoundError):
            return (
                ObjectNotFound(missing) if missing is not None else BackendError(f"{what}: {exc}")
            )
        if isinstance(exc, PermissionError):
            return BackendError(f"{what}: access denied ({exc})")
        if isinstance(exc, OSError):
            return BackendError(f"{what}: {exc}")
        return super()._translate(exc, what, missing)

    def open_read(self, key: str) -> BinaryIO:
        with self._translated(f"cannot read {key}", missing=key):
            if "memory" in self.fs.protocol:
                # fsspec's memory filesystem hands every reader the same file object (one
                # shared position): concurrent readers get a copy each.
                return io.BytesIO(self.fs.cat_file(self._path(key)))
            return cast(BinaryIO, self.fs.open(self._path(key), "rb"))

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._translated(f"cannot write {key}"):
            self.fs.pipe_file(self._path(key), data)

    def publish(self, local_path: Path, key: str) -> bool:
        try:
            with self._translated(f"cannot store {key}"):
                if self.fs.isfile(self._path(key)):
                    return False
                self.fs.put_file(str(local_path), self._path(key))
                return True
        finally:
            local_path.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        with self._translated(f"cannot check {key}"):
            return bool(self.fs.isfile(self._path(key)))

    def size(self, key: str) -> int:
        with self._translated(f"cannot stat {key}", missing=key):
            return int(self.fs.size(self._path(key)))

    def delete(self, key: str) -> None:
        with self._translated(f"cannot delete {key}", missing=key):
            if not self.fs.isfile(self._path(key)):
                raise ObjectNotFound(key)
            self.fs.rm_file(self._path(key))

    def list(self, prefix: str) -> Iterator[str]:
        with self._translated(f"cannot list {prefix}", missing=prefix):
            try:
                found = self.fs.find(self._path(prefix))
            except FileNotFoundError:
                found = []
        strip = len(self.root) + 1
        for path in found:
            key = cast(str, path)[strip:]
            # Some servers (SeaweedFS) list an emptied folder as a key of its own.
            if key and key != prefix.rstrip("/"):
                yield key

    def list_detailed(self, prefix: str) -> Iterator[KeyInfo]:
        with self._translated(f"cannot list {prefix}", missing=prefix):
            try:
                found = self.fs.find(self._path(prefix), detail=True)
            except FileNotFoundError:
                found = {}
        strip = len(self.root) + 1
        for path, info in found.items():
            key = cast(str, path)[strip:]
            if key and key != prefix.rstrip("/") and info.get("type") != "directory":
                yield KeyInfo(key, int(info.get("size") or 0), _mtime(info))

    def delete_many(self, keys: Sequence[str]) -> None:
        paths = [self._path(k) for k in keys]
        for start in range(0, len(paths), 1000):  # S3 deletes up to 1,000 keys a request
            with self._translated("cannot delete"), suppress(FileNotFoundError):
                self.fs.rm(paths[start : start + 1000])

    def move(self, src: str, dst: str) -> None:
        with self._translated(f"cannot move {src}", missing=src):
            self.fs.mv(self._path(src), self._path(dst))

    def staging_dir(self) -> Path:
        return Path(self._staging.name)
