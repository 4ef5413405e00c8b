"""The digest contract: ``blake3:`` followed by 64 lowercase hex characters.

A digest is the unkeyed BLAKE3 hash of the exact content bytes, so ``b3sum
FILE`` prints the same hex. How an object is stored never changes it.
"""

from __future__ import annotations

import os
import re

from casstore.errors import InvalidDigest

ALGORITHM = "blake3"
PREFIX = ALGORITHM + ":"
HEX_LENGTH = 64
#: The shortest prefix accepted for lookup, as git does for abbreviated hashes.
MIN_PREFIX_LENGTH = 8

_HEX = re.compile(r"[0-9a-f]+")
#: A canonical digest, exactly: the one pattern every record reader uses.
DIGEST_PATTERN = re.compile(r"blake3:[0-9a-f]{64}")


def format_digest(hexdigest: str) -> str:
    """Return the canonical ``blake3:<hex>`` form of a 64-hex digest."""
    return PREFIX + hexdigest


def _strip(text: str) -> str:
    text = text.strip()
    if text.lower().startswith(PREFIX):
        text = text[len(PREFIX) :]
    return text.lower()


def parse_digest(text: str) -> str:
    """Return the canonical form of a full digest (``blake3:<hex>`` or bare hex).

    Raises :class:`InvalidDigest` for anything else.
    """
    hexpart = _strip(text)
    if len(hexpart) != HEX_LENGTH or not _HEX.fullmatch(hexpart):
        raise InvalidDigest(
            f"invalid digest {text!r}: expected blake3:<{HEX_LENGTH} hex characters>"
        )
    return PREFIX + hexpart


def parse_prefix(text: str) -> str:
    """Return the hex of a digest or a digest prefix of at least 8 hex characters."""
    hexpart = _strip(text)
    if not _HEX.fullmatch(hexpart) or len(hexpart) > HEX_LENGTH:
        raise InvalidDigest(f"invalid digest {text!r}: expected hex characters")
    if len(hexpart) < MIN_PREFIX_LENGTH:
        raise InvalidDigest(
            f"digest prefix {text!r} is too short: give at least {MIN_PREFIX_LENGTH} hex characters"
        )
    return hexpart


def is_digest(text: object) -> bool:
    """True for a canonical digest string (``blake3:`` and 64 lowercase hex)."""
    return isinstance(text, str) and DIGEST_PATTERN.fullmatch(text) is not None


def looks_like_digest(text: str) -> bool:
    """True when ``text`` has the shape of a digest or prefix (so it is not a tag name)."""
    hexpart = _strip(text)
    return text.strip().lower().startswith(PREFIX) or (
        MIN_PREFIX_LENGTH <= len(hexpart) <= HEX_LENGTH and bool(_HEX.fullmatch(hexpart))
    )


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """The digest of ``data``."""
    from blake3 import blake3

    return PREFIX + blake3(data).hexdigest()


def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """The digest and size of a file, read in pieces (never whole into memory)."""
    from blake3 import blake3

    hasher = blake3()
    size = 0
    with open(path, "rb") as f:
        while piece := f.read(1 << 20):
            hasher.update(piece)
            size += len(piece)
    return PREFIX + hasher.hexdigest(), size
