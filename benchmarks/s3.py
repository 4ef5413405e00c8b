"""S3 on a local SeaweedFS: 2,000 objects of 4 KiB, batched against one request at a time,
and against a plain keep-alive HTTP PUT loop that uses no s3fs at all."""

from __future__ import annotations

import http.client
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from blake3 import blake3

from casstore.store.objects import Store
from casstore.store.open import init_store, open_store
from tests.s3_server import S3Server, server_environment, start_seaweedfs

COUNT = 2000
SIZE = 4096
BUCKET = "bench"
PLAIN = "plain HTTP PUT loop (no s3fs)"
PUT_ONE = "put, one request at a time"
PUT_BATCHED = "put, batched (put_many)"
HAS_ONE = "has, one request at a time"
HAS_BATCHED = "has, batched (missing), loose objects"
HAS_PACKED = "has, batched (missing), packed objects"


def fresh_view(store: Store) -> Store:
    """The same store as another process sees it: no index loaded yet."""
    return open_store(store.url, cache=False)


@dataclass
class Rate:
    name: str
    seconds: float
    count: int = COUNT

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    def line(self) -> str:
        return f"{self.name:<40} {self.per_second:8.0f} objects/s  ({self.seconds:.2f} s)"


def objects(seed: str) -> list[bytes]:
    stream = blake3(seed.encode()).digest(length=COUNT * SIZE)
    return [stream[i * SIZE : (i + 1) * SIZE] for i in range(COUNT)]


def timed(name: str, func: Callable[[], object]) -> Rate:
    start = time.perf_counter()
    func()
    return Rate(name, time.perf_counter() - start)


def plain_http_put_loop(server: S3Server, datas: list[bytes], prefix: str) -> None:
    """One signed PUT after another on one keep-alive connection: the peer to beat."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    signer = SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", "us-east-1")
    parts = urlsplit(server.endpoint_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    for i, data in enumerate(datas):
        url = f"{server.endpoint_url}/{BUCKET}/{prefix}/{i}"
        request = AWSRequest(
            method="PUT", url=url, data=data, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
        )
        signer.add_auth(request)
        conn.request("PUT", f"/{BUCKET}/{prefix}/{i}", body=data, headers=dict(request.headers))
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"plain PUT failed: {response.status}")
    conn.close()


@dataclass
class ClosureResult:
    objects: int
    size: int
    push_seconds: float
    verify_seconds: float

    def lines(self) -> list[str]:
        mb = self.size / 1e6
        return [
            f"push of a run's closure ({self.objects} objects, {mb:.0f} MB): "
            f"{self.push_seconds:.2f} s ({mb / self.push_seconds:.0f} MB/s, "
            f"{self.objects / self.push_seconds:.0f} objects/s)",
            f"verify of it on S3: {self.verify_seconds:.2f} s "
            f"({mb / self.verify_seconds:.0f} MB/s, "
            f"{self.objects / self.verify_seconds:.0f} objects/s)",
        ]


def push_and_verify(source: Store, run_digest: str) -> ClosureResult:
    """Push a recorded run to a fresh bucket prefix, then verify its closure there."""
    from casstore.graph.transfer import transfer
    from casstore.graph.verify import verify_closure

    target = init_store(f"s3://{BUCKET}/{uuid.uuid4().hex}")[0]
    start = time.perf_counter()
    result = transfer(source, target, [run_digest])
    pushed = time.perf_counter() - start
    start = time.perf_counter()
    report = verify_closure(open_store(target.url, cache=False), run_digest, jobs=16)
    verified = time.perf_counter() - start
    assert report.status == "ok", report.as_json()
    return ClosureResult(result.copied, result.copied_bytes, pushed, verified)


def run(
    workdir: Path, runs: int = 2, closure: tuple[Store, str] | None = None
) -> tuple[list[Rate], ClosureResult | None]:
    import s3fs

    # A fresh server folder each run: a reused one still has the last run's bucket.
    folder = workdir / f"seaweedfs-{uuid.uuid4().hex[:8]}"
    server = start_seaweedfs(folder)
    best: dict[str, Rate] = {}

    def fresh() -> Store:
        return init_store(f"s3://{BUCKET}/{uuid.uuid4().hex}")[0]

    def keep(rate: Rate) -> None:
        if rate.name not in best or rate.seconds < best[rate.name].seconds:
            best[rate.name] = rate

    pushed = None
    try:
        with server_environment(server):
            s3fs.S3FileSystem(**server.storage_options()).mkdir(BUCKET)
            for attempt in range(runs):
                measure_once(server, f"bench-{attempt}", fresh, keep)
            if closure is not None:
                pushed = push_and_verify(*closure)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return list(best.values()), pushed


def measure_once(
    server: S3Server, seed: str, fresh: Callable[[], Store], keep: Callable[[Rate], None]
) -> None:
    datas = objects(seed)
    digests = [f"blake3:{blake3(d).hexdigest()}" for d in datas]
    prefix = uuid.uuid4().hex
    keep(timed(PLAIN, lambda: plain_http_put_loop(server, datas, prefix)))
    one, batched = fresh(), fresh()
    keep(timed(PUT_ONE, lambda: [one.put_bytes(d) for d in datas]))
    keep(timed(PUT_BATCHED, lambda: batched.put_many(datas)))
    keep(timed(HAS_ONE, lambda: [one.has(d) for d in digests]))
    # The same loose objects, checked in one batch; then the packed ones.
    keep(timed(HAS_BATCHED, lambda: fresh_view(one).missing(digests)))
    keep(timed(HAS_PACKED, lambda: fresh_view(batched).missing(digests)))


def report(rates: list[Rate]) -> list[tuple[str, float, float]]:
    """(what, ratio, target) for the comparisons the issue sets."""
    rate = {r.name: r.per_second for r in rates}
    return [
        ("batched put / plain HTTP PUT loop", rate[PUT_BATCHED] / rate[PLAIN], 1.0),
        ("batched put / one at a time", rate[PUT_BATCHED] / rate[PUT_ONE], 1.0),
        ("batched has / one at a time (loose)", rate[HAS_BATCHED] / rate[HAS_ONE], 1.0),
    ]
