"""What an S3 server answered when it refused: the HTTP status and the error code
from the body, read here once (never from message text)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from email.message import Message

NO_SUCH_BUCKET = "NoSuchBucket"
NO_SUCH_KEY = ("NoSuchKey", "404", "NotFound")
#: A conditional create (If-None-Match: *) found the key already there.
PRECONDITION_FAILED = ("PreconditionFailed", "412")
#: A ranged read that starts at or past the end of the object.
INVALID_RANGE = ("InvalidRange", "416")
ACCESS_DENIED = (
    "AccessDenied",
    "403",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
)


class S3Error(Exception):
    """An error answer: its HTTP status and S3 error code (the status, as text, where
    the server sent no body, as for a HEAD)."""

    def __init__(self, status: int, code: str, message: str, region: str | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.status, self.code, self.message = status, code, message
        #: The bucket's region, where the server names it (a request signed for another).
        self.region = region


class S3Timeout(Exception):
    """The endpoint did not answer in time, on every try."""


def xml_text(element: ET.Element, name: str) -> str:
    """The text of ``element``'s child ``name``, whatever namespace the server uses."""
    for child in element:
        if child.tag.rpartition("}")[2] == name:
            return child.text or ""
    return ""


def xml_children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if child.tag.rpartition("}")[2] == name]


def error_from(status: int, headers: Message, body: bytes) -> S3Error:
    code, message = str(status), ""
    if body.lstrip().startswith(b"<"):
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            pass
        else:
            code = xml_text(root, "Code") or code
            message = xml_text(root, "Message")
    return S3Error(status, code, message, headers.get("x-amz-bucket-region"))
