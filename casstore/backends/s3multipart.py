"""Large objects go up as multipart uploads: invisible until complete, completed only
where nothing is under the name yet (``If-None-Match: *``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from xml.sax.saxutils import escape

from casstore.backends import s3errors
from casstore.backends.s3errors import S3Error, xml_text
from casstore.backends.s3http import S3Client
from casstore.backends.s3stream import FileSlice


def upload(
    client: S3Client,
    bucket: str,
    name: str,
    local_path: Path,
    size: int,
    part: int,
    parallel: Callable[[Callable[[tuple[int, int]], str], Sequence[tuple[int, int]]], list[str]],
) -> bool:
    """Send a local file in parts (``parallel`` sends several at once) and complete it
    only where nothing is under the name yet; False then, and the upload is aborted."""
    started = client.request("POST", bucket, name, query={"uploads": ""})
    upload = xml_text(ET.fromstring(started.body), "UploadId")
    spans = [(n + 1, offset) for n, offset in enumerate(range(0, size, part))]

    def send(span: tuple[int, int]) -> str:
        number, offset = span
        length = min(part, size - offset)
        answer = client.request(
            "PUT",
            bucket,
            name,
            query={"partNumber": str(number), "uploadId": upload},
            body=lambda: FileSlice(local_path, offset, length),
            length=length,
        )
        return str(answer.headers.get("etag") or "")

    try:
        tags = parallel(send, spans)
        listed = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{escape(tag)}</ETag></Part>"
            for (n, _), tag in zip(spans, tags, strict=True)
        )
        body = f"<CompleteMultipartUpload>{listed}</CompleteMultipartUpload>".encode()
        try:
            done = client.request(
                "POST",
                bucket,
                name,
                query={"uploadId": upload},
                headers={"if-none-match": "*"},
                body=body,
            )
        except S3Error as exc:
            if exc.code in s3errors.PRECONDITION_FAILED:
                abort(client, bucket, name, upload)
                return False
            raise
        # S3 may answer a completion 200 and say in the body that it failed.
        if b"<Error>" in done.body[:200]:
            raise ValueError(f"completing the upload failed: {done.body[:200]!r}")
        return True
    except BaseException:
        with suppress(Exception):
            abort(client, bucket, name, upload)
        raise


def abort(client: S3Client, bucket: str, name: str, upload: str) -> None:
    try:
        client.request("DELETE", bucket, name, query={"uploadId": upload})
    except S3Error as exc:
        if exc.status != 404:  # gone already
            raise
