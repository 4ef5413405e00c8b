"""Errors raised by casstore.

Every error inherits from :class:`CasError` and, where one fits, from the
matching builtin, so callers can catch either (``except FileNotFoundError``
works for a missing object). The CLI maps each class to an exit code.
"""

from __future__ import annotations


class CasError(Exception):
    """Base class of every error casstore raises."""


class ObjectNotFound(CasError, FileNotFoundError):
    """The object (or ref) is not in the store."""

    def __init__(self, what: str, message: str | None = None) -> None:
        super().__init__(message or f"not found: {what}")
        self.what = what

    def __str__(self) -> str:
        return str(self.args[0])


class IntegrityError(CasError, ValueError):
    """Stored bytes do not hash to the digest they are stored under, or are malformed."""


class InvalidDigest(CasError, ValueError):
    """A string is not a digest, or a prefix matches no object or several."""


class NotAStore(CasError, FileNotFoundError):
    """The location has no casstore marker (or an unsupported format version)."""

    def __str__(self) -> str:
        return str(self.args[0])


class ConfigError(CasError, ValueError):
    """``store.toml``, ``$CAS_STORE`` or an option names something unusable."""


class InvalidRefName(CasError, ValueError):
    """A tag name is empty, too long, or could escape ``refs/``."""


class BackendError(CasError, OSError):
    """The storage backend failed (I/O error, network, permissions)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "storage backend error"


class ArchiveError(CasError, ValueError):
    """A snapshot source (folder or archive) is unsafe, malformed or too large."""


class ManifestError(CasError, ValueError):
    """A run manifest or grading record is malformed, of another kind, or of an
    unsupported schema version."""


class DestinationError(CasError, FileExistsError):
    """The destination exists and is not empty (pass ``force`` to replace it)."""


class BundleError(IntegrityError):
    """A bundle file is damaged, or holds a member that is not what it claims."""


class RefExists(CasError, FileExistsError):
    """A ref already names another object (move it with ``force``), or its name clashes
    with a namespace."""


class ReadOnlyStore(CasError, PermissionError):
    """A write to a store opened read-only (``--read-only``, ``[store] read_only``)."""


class UsageError(CasError, ValueError):
    """Arguments that parse but make no sense together (the CLI's exit 2)."""


class ChunkMissing(IntegrityError):
    """A chunked object's chunk is not in the store (a reference to a missing object)."""

    def __init__(self, digest: str, chunk: str) -> None:
        super().__init__(f"{digest}: its chunk {chunk} is missing")
        self.chunk = chunk
