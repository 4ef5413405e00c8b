"""The temp files objects are encoded into before they are published. Their write
errors (a full disk) are the store's, never to be mistaken for errors reading the
source."""

from __future__ import annotations

from typing import BinaryIO

from casstore.errors import BackendError, IntegrityError


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
