"""S3 (and S3-compatible servers) through s3fs, with what S3 makes cheap or safe.

- Publish is a conditional create (``If-None-Match: *``): two writers never
  clobber each other, and a large object goes up as a multipart upload that is
  invisible until complete.
- Presence checks are one HEAD each (``exists()`` in s3fs may cost two), and
  many of them run concurrently on s3fs's event loop.
- Small reads are one GET, without the HEAD s3fs sends first by default.
"""

from __future__ import annotations

import asyncio
import copy
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO, cast

from casstore.backends import s3errors
from casstore.backends.base import KeyInfo
from casstore.backends.fsspec import FsspecBackend
from casstore.errors import BackendError, CasError

DEFAULT_CONCURRENCY = 16
_MAX_PARTS = 10_000
#: Joins an incomplete upload's key and id in what :meth:`S3Backend.leftovers` returns.
_UPLOAD = "?uploadId="


@contextmanager
def _exists_as_false() -> Iterator[None]:
    """Swallow the 412 of a conditional create: the object is there already.

    The ``with`` body's ``return True`` is then skipped, and the caller's
    ``return False`` after the block runs.
    """
    try:
        yield
    except FileExistsError:
        pass
    except OSError as exc:
        # s3fs maps 412 to FileExistsError only when the server names the failed
        # condition; SeaweedFS does not, so the code decides.
        if not s3errors.is_code(exc, s3errors.PRECONDITION_FAILED):
            raise


class _Rest(io.RawIOBase):
    """An object read from S3: a first piece fetched already, the rest streamed on."""

    def __init__(self, backend: S3Backend, key: str, head: bytes) -> None:
        super().__init__()
        self._backend, self._key = backend, key
        self._head = memoryview(head)
        self._rest: BinaryIO | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        with self._backend._translated(f"cannot read {self._key}", missing=self._key):
            if self._rest is None:
                path = self._backend._path(self._key)
                self._rest = cast(BinaryIO, self._backend.fs.open(path, "rb"))
                self._rest.seek(self._backend.first_read)
            return self._rest.readinto(view)  # type: ignore[attr-defined, no-any-return]

    def close(self) -> None:
        if self._rest is not None:
            self._rest.close()
        super().close()


class S3Backend(FsspecBackend):
    #: Objects over twice this size go up as multipart uploads (invisible until complete).
    multipart_part = 32 << 20
    #: Read with one GET; larger objects stream on after it.
    first_read = 1 << 20
    requests_are_cheap = False

    def __init__(
        self, url: str, *, storage_options: dict[str, Any], concurrency: int = DEFAULT_CONCURRENCY
    ) -> None:
        from casstore.config import S3Section, s3_client_options

        # Timeouts and retries: [s3] of store.toml, else its defaults; never s3fs's own.
        options = {**s3_client_options(S3Section()), **storage_options}
        # fsspec caches instances by their arguments only, but the endpoint and
        # credentials may come from the environment: never reuse another store's client.
        options.setdefault("skip_instance_cache", True)
        super().__init__(url, storage_options=options)
        # botocore retries (above); s3fs would retry each of its attempts five times more.
        self.fs.retries = 1
        # A deep copy: botocore pops keys from the nested retries dict it is handed.
        self._limits: dict[str, Any] = copy.deepcopy(options["config_kwargs"])
        self.bucket = self.root.split("/", 1)[0]
        self.concurrency = max(1, concurrency)

    def _translate(self, exc: Exception, what: str, missing: str | None) -> CasError:
        if s3errors.is_code(exc, s3errors.NO_SUCH_BUCKET):
            return BackendError(
                f"{what}: the bucket {self.bucket!r} does not exist at {self._endpoint()}: "
                "create it (cas init --create-bucket URL, or your S3 console)"
            )
        if s3errors.is_code(exc, s3errors.ACCESS_DENIED):
            return BackendError(f"{what}: access denied ({s3errors.error_code(exc)})")
        if s3errors.is_timeout(exc):
            limits = self._limits
            retries = (limits.get("retries") or {}).get("total_max_attempts", 1) - 1
            return BackendError(
                f"{what}: {self._endpoint()} did not answer in time (connect_timeout "
                f"{limits.get('connect_timeout')} s, read_timeout {limits.get('read_timeout')} s, "
                f"retries {retries}: [s3] in store.toml)"
            )
        return super()._translate(exc, what, missing)

    def create_container(self) -> bool:
        with self._translated(f"cannot create the bucket {self.bucket!r}"):
            if self.fs.exists(self.bucket):
                return False
            self.fs.mkdir(self.bucket)
            return True

    def _endpoint(self) -> str:
        client = self.fs.client_kwargs or {}
        return str(client.get("endpoint_url") or "the default endpoint")

    def _split(self, key: str) -> tuple[str, str]:
        bucket, _, rest = self._path(key).partition("/")
        return bucket, rest

    def _sync(self, coro: Any) -> Any:
        from fsspec.asyn import sync

        return sync(self.fs.loop, lambda: coro)

    async def _head(self, key: str) -> bool:
        bucket, path = self._split(key)
        try:
            await self.fs._call_s3("head_object", Bucket=bucket, Key=path)
        except FileNotFoundError:
            return False
        return True

    def exists(self, key: str) -> bool:
        with self._translated(f"cannot check {key}"):
            return bool(self._sync(self._head(key)))

    def exists_many(self, keys: Sequence[str]) -> list[bool]:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(key: str) -> bool:
            async with limit:
                return await self._head(key)

        async def every() -> list[bool]:
            return list(await asyncio.gather(*(one(key) for key in keys)))

        with self._translated("cannot check objects"):
            return list(self._sync(every()))

    def open_read(self, key: str) -> BinaryIO:
        # One GET for the first piece: most objects read (records, configs) end there,
        # and a file object would cost a HEAD first.
        head = self.read_range(key, 0, self.first_read)
        if len(head) < self.first_read:
            return io.BytesIO(head)
        return cast(BinaryIO, io.BufferedReader(_Rest(self, key, head), self.first_read))

    def read_bytes(self, key: str) -> bytes:
        with self._translated(f"cannot read {key}", missing=key):
            return bytes(self.fs.cat_file(self._path(key), max_concurrency=1))

    def read_range(self, key: str, start: int, end: int) -> bytes:
        with self._translated(f"cannot read {key}", missing=key):
            try:
                return bytes(self.fs.cat_file(self._path(key), start=start, end=end))
            except OSError as exc:
                # 416: the range starts past the end, which the contract calls short.
                if s3errors.is_code(exc, s3errors.INVALID_RANGE):
                    return b""
                raise

    def publish(self, local_path: Path, key: str) -> bool:
        size = local_path.stat().st_size
        # S3 allows at most 10,000 parts: larger objects get larger parts.
        part = max(self.multipart_part, -(-size // _MAX_PARTS))
        try:
            with self._translated(f"cannot store {key}"), _exists_as_false():
                self.fs.put_file(str(local_path), self._path(key), mode="create", chunksize=part)
                return True
            return False
        finally:
            local_path.unlink(missing_ok=True)

    def leftovers(self, before: float) -> Sequence[KeyInfo]:
        """Multipart uploads under the store's prefix that a killed writer never completed
        (they cost storage until aborted); each as ``<key>?uploadId=<id>``."""
        bucket, prefix = self._split("")

        async def every() -> list[KeyInfo]:
            found: list[KeyInfo] = []
            markers: dict[str, str] = {}
            while True:
                page = await self.fs._call_s3(
                    "list_multipart_uploads", Bucket=bucket, Prefix=prefix, **markers
                )
                for upload in page.get("Uploads") or []:
                    started = upload["Initiated"].timestamp()
                    if started < before:
                        key = str(upload["Key"])[len(prefix) :]
                        found.append(KeyInfo(f"{key}{_UPLOAD}{upload['UploadId']}", 0, started))
                if not page.get("IsTruncated"):
                    return found
                markers = {
                    "KeyMarker": page.get("NextKeyMarker", ""),
                    "UploadIdMarker": page.get("NextUploadIdMarker", ""),
                }

        with self._translated("cannot list incomplete uploads"):
            return list(self._sync(every()))

    def remove_leftovers(self, leftovers: Sequence[KeyInfo]) -> None:
        async def abort(leftover: KeyInfo) -> None:
            key, _, upload = leftover.key.partition(_UPLOAD)
            bucket, path = self._split(key)
            with suppress(FileNotFoundError):
                await self.fs._call_s3(
                    "abort_multipart_upload", Bucket=bucket, Key=path, UploadId=upload
                )

        async def every() -> None:
            await asyncio.gather(*(abort(leftover) for leftover in leftovers))

        with self._translated("cannot abort incomplete uploads"):
            self._sync(every())

    def create_many(self, items: Sequence[tuple[str, bytes]]) -> list[bool]:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(key: str, data: bytes) -> bool:
            async with limit:
                with _exists_as_false():
                    await self.fs._pipe_file(self._path(key), data, mode="create")
                    return True
                return False

        async def every() -> list[bool]:
            return list(await asyncio.gather(*(one(key, data) for key, data in items)))

        with self._translated("cannot store objects"):
            return list(self._sync(every()))
