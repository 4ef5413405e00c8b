"""Bodies that stream: a slice of a local file sent as a request body, and an
object read on from an offset that resumes where the network cut it."""

from __future__ import annotations

import http.client
import io
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from casstore.backends import s3errors
from casstore.backends.s3errors import S3Error, S3Timeout
from casstore.backends.s3http import S3Client


class FileSlice(io.RawIOBase):
    """Bytes ``offset`` to ``offset + length`` of a file, read as they are sent."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 (closed with this object)
        self._file.seek(offset)
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")[: self._left]
        n = self._file.readinto(view)
        self._left -= n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


class Resuming(io.RawIOBase):
    """An object from S3: a first piece fetched already, the rest streamed on; a
    stream the network cuts is asked for again from where it stopped."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        name: str,
        head: bytes,
        translated: Callable[[], AbstractContextManager[None]],
    ) -> None:
        super().__init__()
        self._client, self._bucket, self._name = client, bucket, name
        self._head = memoryview(head)
        self._position = len(head)
        self._translated = translated
        self._response: http.client.HTTPResponse | None = None
        self._release: Callable[[bool], None] | None = None
        self._ended = False

    def readable(self) -> bool:
        return True

    def _open(self) -> None:
        try:
            opened = self._client.send(
                "GET",
                self._bucket,
                self._name,
                headers={"range": f"bytes={self._position}-"},
                ok=(206,),
                stream=True,
            )
        except S3Error as exc:
            if exc.code in s3errors.INVALID_RANGE:  # the first piece was all of it
                self._ended = True
                return
            raise
        assert isinstance(opened, tuple)
        self._response, self._release = opened

    def _drop(self, finished: bool) -> None:
        if self._release is not None:
            self._release(finished)
        self._response = self._release = None

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        failures = 0
        with self._translated():
            while not self._ended:
                if self._response is None:
                    self._open()
                    continue
                try:
                    n = self._response.readinto(view)
                except (OSError, http.client.HTTPException) as exc:
                    self._drop(False)
                    failures += 1
                    if failures > self._client.retries:
                        if isinstance(exc, TimeoutError):
                            raise S3Timeout(str(exc)) from exc
                        raise
                    continue
                if n == 0:
                    self._drop(True)
                    self._ended = True
                    break
                self._position += n
                return n
        return 0

    def close(self) -> None:
        self._drop(False)
        super().close()
