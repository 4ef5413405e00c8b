"""S3 (and S3-compatible servers), spoken directly (``s3http``), with what S3 makes
cheap or safe.

- Publish is a conditional create (``If-None-Match: *``): two writers never
  clobber each other, and a large object goes up as a multipart upload (its
  parts several at once) that is invisible until complete.
- Presence checks are one HEAD each; many run at once, on a pool of threads.
- Small reads are one GET; larger objects stream on after it, and a stream cut
  by the network resumes where it stopped.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from xml.sax.saxutils import escape

from casstore.backends import s3auth, s3errors, s3multipart
from casstore.backends.base import Backend, KeyInfo
from casstore.backends.s3errors import S3Error, S3Timeout, xml_children, xml_text
from casstore.backends.s3http import S3Client
from casstore.backends.s3stream import FileSlice, Resuming
from casstore.errors import BackendError, CasError, ConfigError, ObjectNotFound

DEFAULT_CONCURRENCY = 16
_MAX_PARTS = 10_000
#: Joins an incomplete upload's key and id in what :meth:`S3Backend.leftovers` returns.
_UPLOAD = "?uploadId="
#: The storage options understood (s3fs's names, so the same dict serves both).
_OPTIONS = frozenset(
    {"key", "secret", "token", "anon", "profile", "client_kwargs", "config_kwargs"}
)
_T = TypeVar("_T")
_R = TypeVar("_R")


def _endpoint(client_kwargs: dict[str, Any]) -> str | None:
    for found in (
        client_kwargs.get("endpoint_url"),
        os.environ.get("AWS_ENDPOINT_URL_S3"),
        os.environ.get("AWS_ENDPOINT_URL"),
    ):
        if found:
            return str(found)
    return None


class S3Backend(Backend):
    #: Objects over twice this size go up as multipart uploads (invisible until complete).
    multipart_part = 32 << 20
    #: Read with one GET; larger objects stream on after it.
    first_read = 1 << 20
    requests_are_cheap = False

    def __init__(
        self, url: str, *, storage_options: dict[str, Any], concurrency: int = DEFAULT_CONCURRENCY
    ) -> None:
        from casstore.config import S3Section, s3_client_options

        # Timeouts and retries: [s3] of store.toml, else its defaults.
        options = {**s3_client_options(S3Section()), **storage_options}
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ConfigError(
                f"unknown S3 storage options {', '.join(unknown)} "
                f"(known: {', '.join(sorted(_OPTIONS))})"
            )
        self.url = url.rstrip("/")
        self.bucket, _, prefix = self.url.partition("://")[2].partition("/")
        if not self.bucket:
            raise ConfigError(f"no bucket in {url}: s3://BUCKET[/PREFIX]")
        self.root = f"{self.bucket}/{prefix.strip('/')}".rstrip("/")
        client = dict(options.get("client_kwargs") or {})
        self._limits: dict[str, Any] = options["config_kwargs"]
        credentials, region = s3auth.resolve(options, client.get("region_name"))
        try:
            self.client = S3Client(
                _endpoint(client),
                region,
                credentials,
                connect_timeout=float(self._limits["connect_timeout"]),
                read_timeout=float(self._limits["read_timeout"]),
                retries=int(self._limits["retries"]["total_max_attempts"]) - 1,
            )
        except ValueError as exc:
            raise ConfigError(f"cannot open {url}: {exc}") from exc
        self.concurrency = max(1, concurrency)
        self._pool: ThreadPoolExecutor | None = None
        # Created up front: writers on several threads share it.
        self._staging = tempfile.TemporaryDirectory(prefix="casstore-")

    # -- plumbing -------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _split(self, key: str) -> tuple[str, str]:
        """The bucket and the object's name in it."""
        bucket, _, rest = self._path(key).partition("/")
        return bucket, rest

    def _endpoint(self) -> str:
        return "the default endpoint" if self.client.aws else self.client.endpoint

    def _translate(self, exc: Exception, what: str, missing: str | None) -> CasError:
        if isinstance(exc, S3Error):
            if exc.code in s3errors.NO_SUCH_KEY:
                return ObjectNotFound(missing) if missing else BackendError(f"{what}: not found")
            if exc.code == s3errors.NO_SUCH_BUCKET:
                return BackendError(
                    f"{what}: the bucket {self.bucket!r} does not exist at {self._endpoint()}: "
                    "create it (cas init --create-bucket URL, or your S3 console)"
                )
            if exc.code in s3errors.ACCESS_DENIED:
                return BackendError(f"{what}: access denied ({exc.code})")
            return BackendError(f"{what}: {exc}")
        if isinstance(exc, S3Timeout):
            limits = self._limits
            retries = limits["retries"]["total_max_attempts"] - 1
            return BackendError(
                f"{what}: {self._endpoint()} did not answer in time (connect_timeout "
                f"{limits['connect_timeout']} s, read_timeout {limits['read_timeout']} s, "
                f"retries {retries}: [s3] in store.toml)"
            )
        if isinstance(exc, OSError):
            return BackendError(f"{what}: cannot reach {self._endpoint()}: {exc.strerror or exc}")
        return BackendError(f"{what}: {self._endpoint()}: {type(exc).__name__}: {exc}")

    def _map(self, fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        """``fn`` over ``items``, ``concurrency`` at a time (each is a request or a few)."""
        if len(items) <= 1:
            return [fn(item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="casstore-s3")
        return list(self._pool.map(fn, items))

    def _head(self, key: str) -> int | None:
        """The size of ``key``, or None when it is not there."""
        bucket, name = self._split(key)
        try:
            answer = self.client.request("HEAD", bucket, name, ok=(200,))
        except S3Error as exc:
            if exc.status == 404:
                return None
            raise
        return int(answer.headers.get("content-length") or 0)

    def _put(self, key: str, body: Any, *, length: int | None = None, create: bool) -> bool:
        """PUT ``body`` under ``key``; with ``create``, only where nothing is (False then)."""
        bucket, name = self._split(key)
        headers = {"if-none-match": "*"} if create else {}
        try:
            self.client.request("PUT", bucket, name, headers=headers, body=body, length=length)
        except S3Error as exc:
            if create and exc.code in s3errors.PRECONDITION_FAILED:
                return False
            raise
        return True

    # -- the contract ---------------------------------------------------------------

    def create_container(self) -> bool:
        with self._translated(f"cannot create the bucket {self.bucket!r}"):
            try:
                self.client.request("HEAD", self.bucket, ok=(200,))
                return False
            except S3Error as exc:
                if exc.status != 404:
                    raise
            region = self.client.signer.region
            body = b""
            if self.client.aws and region != "us-east-1":
                body = (
                    "<CreateBucketConfiguration><LocationConstraint>"
                    f"{region}</LocationConstraint></CreateBucketConfiguration>"
                ).encode()
            self.client.request("PUT", self.bucket, body=body)
            return True

    def exists(self, key: str) -> bool:
        with self._translated(f"cannot check {key}"):
            return self._head(key) is not None

    def exists_many(self, keys: Sequence[str]) -> list[bool]:
        with self._translated("cannot check objects"):
            return [size is not None for size in self._map(self._head, keys)]

    def size(self, key: str) -> int:
        with self._translated(f"cannot stat {key}", missing=key):
            found = self._head(key)
        if found is None:
            raise ObjectNotFound(key)
        return found

    def open_read(self, key: str) -> BinaryIO:
        # One GET for the first piece: most objects read (records, configs) end there.
        head = self.read_range(key, 0, self.first_read)
        if len(head) < self.first_read:
            return io.BytesIO(head)
        bucket, name = self._split(key)
        rest = Resuming(
            self.client,
            bucket,
            name,
            head,
            lambda: self._translated(f"cannot read {key}", missing=key),
        )
        return io.BufferedReader(rest, self.first_read)

    def read_bytes(self, key: str) -> bytes:
        bucket, name = self._split(key)
        with self._translated(f"cannot read {key}", missing=key):
            return self.client.request("GET", bucket, name).body

    def read_range(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        bucket, name = self._split(key)
        with self._translated(f"cannot read {key}", missing=key):
            try:
                answer = self.client.request(
                    "GET", bucket, name, headers={"range": f"bytes={start}-{end - 1}"}
                )
            except S3Error as exc:
                # 416: the range starts past the end, which the contract calls short.
                if exc.code in s3errors.INVALID_RANGE:
                    return b""
                raise
        # A server that ignores the range sends everything.
        return answer.body if answer.status == 206 else answer.body[start:end]

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._translated(f"cannot write {key}"):
            self._put(key, bytes(data), create=False)

    def publish(self, local_path: Path, key: str) -> bool:
        try:
            size = local_path.stat().st_size
            # S3 allows at most 10,000 parts: larger objects get larger parts.
            part = max(self.multipart_part, -(-size // _MAX_PARTS))
            with self._translated(f"cannot store {key}"):
                if size <= 2 * self.multipart_part:
                    return self._put(
                        key, lambda: FileSlice(local_path, 0, size), length=size, create=True
                    )
                return s3multipart.upload(
                    self.client, *self._split(key), local_path, size, part, self._map
                )
        finally:
            local_path.unlink(missing_ok=True)

    def create_many(self, items: Sequence[tuple[str, bytes]]) -> list[bool]:
        with self._translated("cannot store objects"):
            return self._map(lambda item: self._put(item[0], item[1], create=True), items)

    def delete(self, key: str) -> None:
        bucket, name = self._split(key)
        with self._translated(f"cannot delete {key}", missing=key):
            if self._head(key) is None:  # S3 deletes what is not there without a word
                raise ObjectNotFound(key)
            self.client.request("DELETE", bucket, name)

    def _pages(self, prefix: str, query: dict[str, str]) -> Iterator[ET.Element]:
        """Each page of a listing under the folder ``prefix``, markers followed."""
        name = self._split(prefix)[1].rstrip("/")
        query = {**query, "prefix": f"{name}/" if name else ""}
        while True:
            page = ET.fromstring(self.client.request("GET", self.bucket, query=query).body)
            yield page
            if xml_text(page, "IsTruncated") != "true":
                return
            if "list-type" in query:
                query["continuation-token"] = xml_text(page, "NextContinuationToken")
            else:
                query["key-marker"] = xml_text(page, "NextKeyMarker")
                query["upload-id-marker"] = xml_text(page, "NextUploadIdMarker")

    def list_detailed(self, prefix: str) -> Iterator[KeyInfo]:
        strip = len(self.root) - len(self.bucket)  # the store's prefix and its slash
        with self._translated(f"cannot list {prefix}", missing=prefix):
            for page in self._pages(prefix, {"list-type": "2"}):
                for entry in xml_children(page, "Contents"):
                    key = xml_text(entry, "Key")[strip:]
                    # Some servers (SeaweedFS) list folders as keys of their own.
                    if key and not key.endswith("/") and key != prefix.rstrip("/"):
                        yield KeyInfo(
                            key,
                            int(xml_text(entry, "Size") or 0),
                            _timestamp(xml_text(entry, "LastModified")),
                        )

    def list(self, prefix: str) -> Iterator[str]:
        return (info.key for info in self.list_detailed(prefix))

    def delete_many(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), 1000):  # S3 deletes up to 1,000 keys a request
            names = "".join(
                f"<Object><Key>{escape(self._split(key)[1])}</Key></Object>"
                for key in keys[start : start + 1000]
            )
            body = f"<Delete><Quiet>true</Quiet>{names}</Delete>".encode()
            md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
            with self._translated("cannot delete"):
                answer = self.client.request(
                    "POST",
                    self.bucket,
                    query={"delete": ""},
                    headers={"content-md5": md5},
                    body=body,
                )
                for error in xml_children(ET.fromstring(answer.body), "Error"):
                    if xml_text(error, "Code") not in s3errors.NO_SUCH_KEY:
                        raise S3Error(200, xml_text(error, "Code"), xml_text(error, "Message"))

    def move(self, src: str, dst: str) -> None:
        bucket, name = self._split(dst)
        with self._translated(f"cannot move {src}", missing=src):
            source = "/".join(self._split(src))
            self.client.request(
                "PUT", bucket, name, headers={"x-amz-copy-source": s3auth.quote_path(f"/{source}")}
            )
            self.client.request("DELETE", *self._split(src))

    def leftovers(self, before: float) -> Sequence[KeyInfo]:
        """Multipart uploads under the store's prefix that a killed writer never completed
        (they cost storage until aborted); each as ``<key>?uploadId=<id>``."""
        strip = len(self.root) - len(self.bucket)
        found: list[KeyInfo] = []
        with self._translated("cannot list incomplete uploads"):
            for page in self._pages("", {"uploads": ""}):
                for upload in xml_children(page, "Upload"):
                    started = _timestamp(xml_text(upload, "Initiated"))
                    if started < before:
                        key = xml_text(upload, "Key")[strip:]
                        found.append(
                            KeyInfo(f"{key}{_UPLOAD}{xml_text(upload, 'UploadId')}", 0, started)
                        )
        return found

    def remove_leftovers(self, leftovers: Sequence[KeyInfo]) -> None:
        def abort(leftover: KeyInfo) -> None:
            key, _, upload = leftover.key.partition(_UPLOAD)
            s3multipart.abort(self.client, *self._split(key), upload)

        with self._translated("cannot abort incomplete uploads"):
            self._map(abort, leftovers)

    def staging_dir(self) -> Path:
        return Path(self._staging.name)


def _timestamp(text: str) -> float:
    """An S3 time (``2026-12-05T10:00:00.000Z``) as a POSIX timestamp."""
    if not text:
        return 0.0
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
