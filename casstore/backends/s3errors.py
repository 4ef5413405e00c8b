"""S3 errors, read from the error code the server sent, never from message text.

s3fs turns botocore's ``ClientError`` into builtin exceptions and keeps the
original as ``__cause__``; the code (``NoSuchBucket``, ``PreconditionFailed``,
``InvalidRange``...) and HTTP status are read from its response here, once.
"""

from __future__ import annotations

from typing import Any

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


def _response(exc: BaseException | None) -> dict[str, Any] | None:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            return response
        exc = exc.__cause__ or exc.__context__
    return None


def error_code(exc: BaseException) -> str | None:
    """The S3 error code behind ``exc`` (or its HTTP status when the server sent no
    code, as for a HEAD), or None when it did not come from an S3 response."""
    response = _response(exc)
    if response is None:
        return None
    code = (response.get("Error") or {}).get("Code")
    if code:
        return str(code)
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return str(status) if status else None


def is_code(exc: BaseException, codes: str | tuple[str, ...]) -> bool:
    code = error_code(exc)
    return code is not None and code in ((codes,) if isinstance(codes, str) else codes)


def is_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` comes from an endpoint that did not answer in time (botocore's
    ``ConnectTimeoutError`` / ``ReadTimeoutError``, or the event loop's own timeout)."""
    import asyncio

    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectTimeoutError | ReadTimeoutError | asyncio.TimeoutError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
