"""Finding objects in gc's trash. gc (``casstore.maintenance.gc``) puts them there;
readers that miss an object look here, so an object trashed while a writer was
referencing it stays readable until the next gc restores it."""

from __future__ import annotations

from collections.abc import Iterable

from casstore.backends.base import Backend
from casstore.format import layout


def trashed(backend: Backend, digests: Iterable[str]) -> dict[str, str]:
    """Which of ``digests`` are in the trash (one listing): digest -> its trash key."""
    wanted = set(digests)
    found: dict[str, str] = {}
    if not wanted:
        return found
    for key in backend.list(layout.TRASH):
        digest = layout.trashed_digest(key)
        if digest in wanted:
            found.setdefault(digest, key)
    return found
