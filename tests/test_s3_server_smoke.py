"""The SeaweedFS test server starts, needs its credentials, and honours conditional create
(``If-None-Match: *``) on both PutObject and CompleteMultipartUpload, which the S3
backend relies on to never overwrite an object."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.s3_server import S3Server, start_seaweedfs

MIB = 1 << 20


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_seaweedfs(tmp_path_factory.mktemp("weed-smoke"))
    try:
        yield server
    finally:
        server.stop()
        assert server.process is not None and server.process.returncode is not None


@pytest.fixture(scope="session")
def client(weed: S3Server) -> Any:
    import botocore.session

    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=weed.endpoint_url,
        aws_access_key_id=weed.access_key,
        aws_secret_access_key=weed.secret_key,
        region_name="us-east-1",
    )


@pytest.fixture
def bucket(client: Any) -> str:
    name = f"smoke-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


def _status(error: Any) -> int:
    return int(error.response["ResponseMetadata"]["HTTPStatusCode"])


def test_listens_only_on_loopback_ports_below_45000(weed: S3Server) -> None:
    url = urlsplit(weed.endpoint_url)
    assert url.hostname == "127.0.0.1"
    assert url.port is not None and url.port < 45000
    assert all(port + 10000 < 45000 for port in weed.ports)
    assert "-ip.bind=127.0.0.1" in weed.command


def test_wrong_secret_is_refused(weed: S3Server) -> None:
    import botocore.session
    from botocore.exceptions import ClientError

    intruder = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=weed.endpoint_url,
        aws_access_key_id=weed.access_key,
        aws_secret_access_key="not-the-secret",
        region_name="us-east-1",
    )
    with pytest.raises(ClientError) as caught:
        intruder.list_buckets()
    assert _status(caught.value) == 403


def test_s3fs_write_and_read(weed: S3Server, bucket: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**weed.storage_options())
    fs.pipe(f"{bucket}/dir/hello", b"hello, seaweed")
    assert fs.cat(f"{bucket}/dir/hello") == b"hello, seaweed"
    assert fs.ls(f"{bucket}/dir") == [f"{bucket}/dir/hello"]
    with fs.open(f"{bucket}/dir/hello", "rb") as file:
        assert file.read(5) == b"hello"


def test_put_object_if_none_match(client: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError

    client.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as caught:
        client.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert _status(caught.value) == 412
    assert caught.value.response["Error"]["Code"] == "PreconditionFailed"
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"


def _multipart(client: Any, bucket: str, key: str, **complete: Any) -> str:
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, body in enumerate([b"a" * (5 * MIB), b"b"], start=1):
        etag = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}, **complete
    )
    return str(upload)


def test_complete_multipart_upload_if_none_match(client: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError

    client.put_object(Bucket=bucket, Key="taken", Body=b"small")
    _multipart(client, bucket, "fresh", IfNoneMatch="*")
    assert client.head_object(Bucket=bucket, Key="fresh")["ContentLength"] == 5 * MIB + 1
    for key in ("taken", "fresh"):  # taken by a plain PUT, and by a multipart upload
        with pytest.raises(ClientError) as caught:
            _multipart(client, bucket, key, IfNoneMatch="*")
        assert _status(caught.value) == 412
    assert client.get_object(Bucket=bucket, Key="taken")["Body"].read() == b"small"
    # A refused completion leaves the upload open: the caller must abort it.
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def test_s3fs_create_mode_sends_if_none_match(weed: S3Server, bucket: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**weed.storage_options())
    small, large = f"{bucket}/small", f"{bucket}/large"
    fs.pipe_file(small, b"first", mode="create")
    # chunksize forces pipe_file's multipart path: If-None-Match goes on the completion.
    fs.pipe_file(large, b"x" * (10 * MIB + 1), mode="create", chunksize=5 * MIB)
    # SeaweedFS's 412 body has no <Condition>, so s3fs raises a plain OSError (EINVAL)
    # rather than the FileExistsError it raises for AWS.
    with pytest.raises(OSError, match="pre-conditions"):
        fs.pipe_file(small, b"second", mode="create")
    with pytest.raises(OSError, match="pre-conditions"):
        fs.pipe_file(large, b"y" * (10 * MIB + 1), mode="create", chunksize=5 * MIB)
    with pytest.raises(OSError, match="pre-conditions"), fs.open(small, "xb") as file:
        file.write(b"third")
    assert fs.cat(small) == b"first"
    assert fs.cat_file(large, start=0, end=1) == b"x"
    uploads = fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", [])
    assert uploads == []  # s3fs aborts its refused multipart upload
