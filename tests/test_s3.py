"""What only S3 has: conditional create, multipart uploads, configuration, and faults.

The conformance suite runs on S3 too (``conftest.BACKENDS``); these are the extras.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from casstore.backends.s3 import S3Backend
from casstore.format import layout
from casstore.format.digest import hash_bytes
from casstore.store.objects import Store
from casstore.store.open import init_store, open_store
from casstore.testing.store import payload
from tests.helpers import BUCKET, run_cas
from tests.s3_proxy import counting_proxy
from tests.s3_server import S3Server, server_environment, start_seaweedfs


@pytest.fixture
def s3_store(s3_server: S3Server) -> Store:
    return init_store(f"s3://{BUCKET}/{uuid.uuid4().hex}")[0]


def test_conditional_create_never_clobbers(s3_store: Store) -> None:
    key = layout.object_key(hash_bytes(b"x"))
    assert s3_store.backend.create_many([(key, b"first")]) == [True]
    assert s3_store.backend.create_many([(key, b"second"), (key + "0", b"other")]) == [False, True]
    assert s3_store.backend.read_bytes(key) == b"first"


def test_large_objects_go_up_multipart_and_conditionally(
    s3_server: S3Server, s3_store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import s3fs

    monkeypatch.setattr(S3Backend, "multipart_part", 5 << 20)
    data = payload(12 << 20, seed=3)
    info = s3_store.put_stream(io.BytesIO(data))
    backend = s3_store.backend
    assert isinstance(backend, S3Backend)
    # Looked at by another client: what the server holds, not what the backend says.
    fs = s3fs.S3FileSystem(**s3_server.storage_options())
    etag = fs.info(backend._path(layout.object_key(info.digest)))["ETag"]
    assert etag.strip('"').endswith("-3")  # three parts: a multipart upload
    assert s3_store.get_bytes(info.digest) == data
    # Publishing the same key again is refused by the server, not overwritten.
    other = tmp_path / "other"
    other.write_bytes(b"not the object" * (1 << 20))
    assert backend.publish(other, layout.object_key(info.digest)) is False
    assert s3_store.get_bytes(info.digest) == data


def test_store_toml_s3_section_is_used(s3_server: S3Server, tmp_path: Path) -> None:
    url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    (tmp_path / "store.toml").write_text(
        f'[store]\nurl = "{url}"\n[s3]\nendpoint_url = "{s3_server.endpoint_url}"\n'
        'region = "us-east-1"\n'
        f'[cache]\ndir = "{tmp_path / "cache"}"\n'
    )
    env = {  # credentials only: the endpoint must come from store.toml
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_ENDPOINT_URL_S3": "",
    }
    assert run_cas("--store", url, "init", cwd=tmp_path, env=env).returncode == 0
    (tmp_path / "f").write_bytes(b"via store.toml")
    result = run_cas("put", "f", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    digest = hash_bytes(b"via store.toml")
    assert run_cas("cat", digest, cwd=tmp_path, env=env).stdout == b"via store.toml"
    assert any((tmp_path / "cache" / "objects").rglob("*"))  # read through the cache


@pytest.mark.parametrize(
    ("env", "url", "message"),
    [
        ({"AWS_SECRET_ACCESS_KEY": "wrong"}, None, "access denied"),
        ({}, "s3://no-such-bucket-here/x", "bucket"),
        ({"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}, None, "cannot"),
    ],
)
def test_s3_failures_are_one_line_exit_1(
    s3_server: S3Server, env: dict[str, str], url: str | None, message: str
) -> None:
    target = url or f"s3://{BUCKET}/{uuid.uuid4().hex}"
    result = run_cas("--store", target, "ls", env={**s3_server.env(), **env})
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert err.startswith("cas: ") and err.count("\n") == 1, err
    assert message in err.lower(), err


_WITHOUT_AWS_PACKAGES = (
    "import sys\n"
    "for name in ('s3fs', 'botocore', 'aiobotocore', 'aiohttp'): sys.modules[name] = None\n"
    "from casstore.cli.main import run\n"
    "sys.exit(run(sys.argv[1:]))\n"
)


def test_keys_in_the_environment_need_no_aws_package(s3_server: S3Server) -> None:
    url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    store, _ = init_store(url)
    digest = store.put_bytes(b"spoken to directly").digest
    env = {**os.environ, **s3_server.env()}
    args = ["--store", url, "--no-cache", "cat", digest]
    shown = subprocess.run(
        [sys.executable, "-c", _WITHOUT_AWS_PACKAGES, *args], capture_output=True, env=env
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == b"spoken to directly"


def test_without_keys_or_botocore_the_error_names_the_extra(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)  # no ~/.aws either
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_AWS_PACKAGES, "--store", "s3://bucket/x", "ls"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 1, result.stderr
    assert "pip install 'casstore[s3]'" in result.stderr
    assert result.stderr.startswith("cas: ") and result.stderr.count("\n") == 1


# A push that a dying server interrupts: nothing partial is visible, and a rerun completes.
def test_server_killed_mid_push_then_rerun_completes(tmp_path: Path) -> None:
    server = start_seaweedfs(tmp_path / "weed")
    try:
        env = server.env()
        import s3fs

        fs = s3fs.S3FileSystem(**server.storage_options())
        fs.mkdir("faults")
        remote = "s3://faults/store"
        home = tmp_path / "home"
        home.mkdir()
        assert run_cas("init", cwd=home).returncode == 0
        assert run_cas("--store", remote, "init", env=env).returncode == 0
        files = []
        # Large files go up one object each; the small ones share a pack, sent last.
        for i in range(60):
            path = home / f"f{i}"
            path.write_bytes(payload(1_200_000 if i < 30 else 2000, seed=i))
            files.append(path)
        digests = run_cas("put", *map(str, files), cwd=home).stdout.decode().split()[::2]
        entries = [{"path": f"f{i}", "type": "file", "digest": d} for i, d in enumerate(digests)]
        (home / "tree.json").write_text(
            json.dumps({"casstore": "tree/1", "entries": entries}, separators=(",", ":"))
        )
        root = run_cas("put", "tree.json", cwd=home).stdout.decode().split()[0]
        # The push goes through a proxy that holds its 6th upload: the server stops
        # while the push is known to be halfway, however fast or loaded the machine.
        with counting_proxy(server.endpoint_url) as proxy:
            proxy.hold("PUT", 6)
            push = subprocess.Popen(
                [sys.executable, "-m", "casstore", "push", root, "--to", remote, "-j", "1"],
                cwd=home,
                env={**os.environ, **env, "AWS_ENDPOINT_URL_S3": proxy.url},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert proxy.holding.wait(timeout=300), "the push never reached its 6th upload"
            assert server.process is not None
            # Stopped, not killed: SeaweedFS loses its bucket list on SIGKILL.
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(timeout=60)
            proxy.release()
            out, err = push.communicate(timeout=300)
        assert push.returncode == 1, (out, err)
        assert err.decode().startswith("cas: ") and err.decode().count("\n") == 1, err

        server.restart()
        _wait_for_bucket(fs, "faults")
        after = _open(server, remote)
        present = set(after.iter_digests())
        assert root not in present  # the tree waits for all its blobs
        for digest in present:
            after.verify(digest)  # whatever arrived is whole
        rerun = run_cas("push", root, "--to", remote, cwd=home, env=env)
        assert rerun.returncode == 0, rerun.stderr
        assert f"{len(present)} already present" in rerun.stdout.decode()
        final = set(_open(server, remote).iter_digests())
        assert final == set(digests) | {root}
    finally:
        server.stop()


def _open(server: S3Server, url: str) -> Store:
    with server_environment(server):
        return open_store(url, cache=False)


def _wait_for_bucket(fs: object, bucket: str) -> None:
    """A restarted SeaweedFS answers before it has loaded its existing buckets."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fs.invalidate_cache()  # type: ignore[attr-defined]
        try:
            fs.ls(bucket)  # type: ignore[attr-defined]
            return
        except FileNotFoundError:
            time.sleep(0.3)
    raise AssertionError(f"bucket {bucket} did not come back after the restart")


def test_read_only_credentials_refuse_writes_clearly(s3_server: S3Server, tmp_path: Path) -> None:
    url = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    store, _ = init_store(url)
    digest = store.put_bytes(b"readable by anyone with read access").digest
    (tmp_path / "f").write_bytes(b"a new object")
    reader = {
        **s3_server.env(),
        "AWS_ACCESS_KEY_ID": s3_server.reader_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.reader_secret,
    }
    shown = run_cas("--store", url, "--no-cache", "cat", digest, env=reader)
    assert shown.returncode == 0 and shown.stdout == b"readable by anyone with read access"
    for args in (["put", str(tmp_path / "f")], ["tag", "t", digest]):
        refused = run_cas("--store", url, *args, env=reader)
        err = refused.stderr.decode()
        assert refused.returncode == 1, err
        assert err.count("\n") == 1 and "denied" in err.lower()
    assert not store.has(hash_bytes(b"a new object")) and store.tags() == {}


def test_a_prefix_with_spaces_and_non_ascii_is_signed_right(s3_server: S3Server) -> None:
    # The server checks each request's signature: a key quoted differently there and
    # in the canonical request fails as SignatureDoesNotMatch.
    store, _ = init_store(f"s3://{BUCKET}/with space+plus/ünï~{uuid.uuid4().hex}")
    digest = store.put_bytes(b"odd prefix").digest
    assert open_store(store.url, cache=False).get_bytes(digest) == b"odd prefix"
    assert digest in set(store.iter_digests())
