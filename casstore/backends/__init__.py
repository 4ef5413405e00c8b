"""Storage backends: a few primitives over keys; the store builds on them."""

from casstore.backends.base import Backend

__all__ = ["Backend", "open_backend"]


def open_backend(
    url: str, *, storage_options: dict[str, object] | None = None, concurrency: int = 16
) -> Backend:
    """The backend for ``url``: a local folder path or ``file://`` URL, else fsspec."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme == "file":
        from casstore.backends.local import LocalBackend

        return LocalBackend(rest if sep else url)
    if scheme in ("s3", "s3a"):
        from casstore.backends.s3 import S3Backend

        return S3Backend(url, storage_options=storage_options or {}, concurrency=concurrency)
    from casstore.backends.fsspec import FsspecBackend

    return FsspecBackend(url, storage_options=storage_options or {})
