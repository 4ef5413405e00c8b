"""An HTTP proxy in front of the test S3 server that counts requests by method: what a
command costs on S3, measured where it is paid, whatever library sent it."""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Hop-by-hop headers are the proxy's own business; Expect is answered here.
_SKIP_REQUEST = {"connection", "keep-alive", "proxy-connection", "expect", "transfer-encoding"}
_SKIP_RESPONSE = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class CountingProxy:
    """Forwards every request to ``upstream`` and counts them by method."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.counts: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._hold: tuple[str, int] | None = None
        #: Set when a request is being held (see :meth:`hold`); cleared to let it go.
        self.holding = threading.Event()
        self._release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = bytearray()
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        out += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return bytes(out)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self) -> None:
                body = self._body()
                with proxy._lock:
                    proxy.counts[self.command] += 1
                    proxy.log.append((self.command, self.path))
                    held = proxy._hold is not None and proxy._hold == (
                        self.command,
                        proxy.counts[self.command],
                    )
                if held:  # a known point of a client's work, for as long as a test needs
                    proxy.holding.set()
                    proxy._release.wait()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIP_REQUEST}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                try:
                    try:
                        upstream.request(self.command, self.path, body=body, headers=headers)
                        response = upstream.getresponse()
                        data = response.read()
                    except OSError:  # the server is gone: say so, as a gateway would
                        self.send_error(502, "upstream unreachable")
                        return
                    self.send_response_only(response.status, response.reason)
                    for key, value in response.getheaders():
                        if key.lower() not in _SKIP_RESPONSE:
                            self.send_header(key, value)
                    length = response.getheader("Content-Length")
                    self.send_header(
                        "Content-Length",
                        length if self.command == "HEAD" and length else str(len(data)),
                    )
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def hold(self, method: str, nth: int) -> None:
        """Hold the ``nth`` request of ``method`` (counted from now on) before forwarding
        it, until :meth:`release`; :attr:`holding` is set meanwhile."""
        with self._lock:
            self.counts[method] = 0
            self._hold = (method, nth)

    def release(self) -> None:
        self._release.set()

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.log.clear()

    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def counting_proxy(upstream: str) -> Iterator[CountingProxy]:
    proxy = CountingProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()
