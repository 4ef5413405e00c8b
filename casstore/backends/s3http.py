"""Requests to an S3 endpoint: signed, over kept-alive connections, retried.

Plain ``http.client`` on the calling thread: a request costs a tenth of a
millisecond of CPU beside the several of botocore's pipeline on one event loop,
and importing this costs nothing noticeable where s3fs took 0.4 s a command.
Any thread may send; connections are pooled and reused.
"""

from __future__ import annotations

import http.client
import random
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import BinaryIO

from casstore.backends.s3auth import CredentialSource, Signer, canonical_query, quote_path
from casstore.backends.s3errors import S3Timeout, error_from

#: Statuses and codes worth another try: the server was busy or failed on its side.
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_RETRY_CODES = frozenset({"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"})
#: What a body is read in while it is sent.
_SEND_BLOCK = 1 << 20


@dataclass(frozen=True)
class Response:
    status: int
    headers: Message
    body: bytes


#: A request body: bytes, or a function opening a fresh stream of it (once per try).
Body = bytes | Callable[[], BinaryIO]


class _Connections:
    """Idle kept-alive connections to one host, taken by whichever thread sends next."""

    def __init__(self, scheme: str, host: str, port: int | None, connect: float, read: float):
        self._scheme, self._host, self._port = scheme, host, port
        self._connect_timeout, self._read_timeout = connect, read
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def take(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        if self._scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host,
                self._port,
                timeout=self._connect_timeout,
                context=self._tls,
                blocksize=_SEND_BLOCK,
            )
        else:
            conn = http.client.HTTPConnection(
                self._host, self._port, timeout=self._connect_timeout, blocksize=_SEND_BLOCK
            )
        return conn

    def opened(self, conn: http.client.HTTPConnection) -> None:
        """Once connected, each read may wait ``read`` seconds (not the connect timeout)."""
        if conn.sock is not None:
            conn.sock.settimeout(self._read_timeout)

    def give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.append(conn)


class S3Client:
    """Sends requests to one endpoint; path-style addressing except on AWS's own."""

    def __init__(
        self,
        endpoint: str | None,
        region: str,
        credentials: CredentialSource,
        *,
        connect_timeout: float,
        read_timeout: float,
        retries: int,
    ) -> None:
        self.aws = not endpoint
        self.endpoint = endpoint or f"https://s3.{region}.amazonaws.com"
        parts = urllib.parse.urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {self.endpoint}")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._base = parts.path.rstrip("/")
        self.signer = Signer(region)
        self._credentials = credentials
        self.retries = retries
        self._timeouts = (connect_timeout, read_timeout)
        self._pools: dict[str, _Connections] = {}
        self._lock = threading.Lock()

    def _where(self, bucket: str, key: str) -> tuple[str, str]:
        """The host and quoted path of ``key`` in ``bucket`` (an empty key: the bucket)."""
        if self.aws and bucket and "." not in bucket:
            return f"{bucket}.{self._host}", quote_path(f"/{key}")
        path = f"{self._base}/{bucket}/{key}" if bucket else f"{self._base}/"
        host = self._host if self._port is None else f"{self._host}:{self._port}"
        return host, quote_path(path)

    def _move(self, region: str) -> None:
        self.signer = Signer(region)
        self._host = f"s3.{region}.amazonaws.com"

    def _pool(self, host: str) -> _Connections:
        with self._lock:
            pool = self._pools.get(host)
            if pool is None:
                name = host.rpartition(":")[0] if self._port is not None else host
                pool = _Connections(self._scheme, name, self._port, *self._timeouts)
                self._pools[host] = pool
            return pool

    def send(
        self,
        method: str,
        bucket: str,
        key: str = "",
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Body | None = None,
        length: int | None = None,
        ok: tuple[int, ...] = (200, 204, 206),
        stream: bool = False,
    ) -> tuple[http.client.HTTPResponse, Callable[[bool], None]] | Response:
        """One request, retried on network errors, timeouts and server faults.

        With ``stream``, the response is returned unread with a function to call when
        done with it (True: read to the end, so its connection can be reused)."""
        canonical = canonical_query(query or {})
        last: Exception | None = None
        attempt = 0
        while attempt <= self.retries:
            if attempt:
                time.sleep(random.random() * min(20.0, 0.25 * 2**attempt))
            attempt += 1
            host, path = self._where(bucket, key)
            target = f"{path}?{canonical}" if canonical else path
            pool = self._pool(host)
            sent = {name.lower(): value for name, value in (headers or {}).items()}
            if body is not None:
                sent["content-length"] = str(len(body) if isinstance(body, bytes) else length)
            self.signer.sign(self._credentials(), method, host, path, canonical, sent)
            conn = pool.take()
            source = None
            try:
                if conn.sock is None:
                    conn.connect()
                    pool.opened(conn)
                source = body if isinstance(body, bytes) or body is None else body()
                conn.request(method, target, body=source, headers=sent)
                response = conn.getresponse()
                if stream and response.status in ok:
                    return response, _releaser(pool, conn, response)
                data = response.read()
            except TimeoutError as exc:
                conn.close()
                last = S3Timeout(str(exc) or "timed out")
                continue
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                last = exc
                continue
            finally:
                if source is not None and not isinstance(source, bytes):
                    source.close()
            if response.will_close:
                conn.close()
            else:
                pool.give(conn)
            if response.status in ok:
                return Response(response.status, response.headers, data)
            error = error_from(response.status, response.headers, data)
            if self.aws and error.region and error.region != self.signer.region:
                # Signed for another region than the bucket's: AWS names the right one.
                self._move(error.region)
                attempt -= 1
                continue
            if response.status in _RETRY_STATUS or error.code in _RETRY_CODES:
                last = error
                continue
            raise error
        assert last is not None
        raise last

    def request(self, method: str, bucket: str, key: str = "", **options: object) -> Response:
        result = self.send(method, bucket, key, **options)  # type: ignore[arg-type]
        assert isinstance(result, Response)
        return result


def _releaser(
    pool: _Connections, conn: http.client.HTTPConnection, response: http.client.HTTPResponse
) -> Callable[[bool], None]:
    def release(finished: bool) -> None:
        if finished and not response.will_close:
            pool.give(conn)
        else:
            conn.close()

    return release
