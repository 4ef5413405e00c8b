"""Named refs (tags): a name under ``refs/tags/`` holding one digest."""

from __future__ import annotations

import re

from casstore.errors import InvalidRefName

MAX_LENGTH = 200
# No '/', so a name can never leave refs/tags/; no leading '.', so no '..' or hidden files.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+=-]*")


def validate_ref_name(name: str) -> str:
    """Return ``name`` if it is a valid tag name, else raise :class:`InvalidRefName`."""
    if not name or len(name) > MAX_LENGTH or not _NAME.fullmatch(name) or ".." in name:
        raise InvalidRefName(
            f"invalid tag name {name!r}: use letters, digits and . _ @ + = -, "
            f"starting with a letter, digit or _, no '..', at most {MAX_LENGTH} characters"
        )
    return name
