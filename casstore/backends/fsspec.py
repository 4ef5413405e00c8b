"""A store at any fsspec URL (``memory://``, ``s3://``, ``gs://`` ...).

fsspec and the filesystem package are imported here only, so ``cas --help``
never pays for them. Their errors are translated to casstore's at this edge.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from casstore.backends.base import Backend
from casstore.errors import BackendError, ConfigError, ObjectNotFound

_INSTALL_HINTS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
}


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

    def open_read(self, key: str) -> BinaryIO:
        try:
            return cast(BinaryIO, self.fs.open(self._path(key), "rb"))
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise BackendError(f"cannot read {key}: {exc}") from exc

    def write_bytes(self, key: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(self._path(key), data)
        except OSError as exc:
            raise BackendError(f"cannot write {key}: {exc}") from exc

    def publish(self, local_path: Path, key: str) -> bool:
        try:
            if self.exists(key):
                return False
            self.fs.put_file(str(local_path), self._path(key))
            return True
        except OSError as exc:
            raise BackendError(f"cannot store {key}: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                local_path.unlink()

    def exists(self, key: str) -> bool:
        try:
            return bool(self.fs.isfile(self._path(key)))
        except OSError as exc:
            raise BackendError(f"cannot check {key}: {exc}") from exc

    def size(self, key: str) -> int:
        try:
            return int(self.fs.size(self._path(key)))
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise BackendError(f"cannot stat {key}: {exc}") from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            if not self.fs.isfile(path):
                raise ObjectNotFound(key)
            self.fs.rm_file(path)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise BackendError(f"cannot delete {key}: {exc}") from exc

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BackendError(f"cannot list {prefix}: {exc}") from exc
        strip = len(self.root) + 1
        for path in found:
            yield cast(str, path)[strip:]

    def staging_dir(self) -> Path:
        return Path(self._staging.name)
