"""The marker file at a store's root: what makes a location a store, and which format
it holds (``docs/FORMAT.md`` section 2)."""

from __future__ import annotations

import json

from casstore.backends.base import Backend
from casstore.errors import NotAStore, ObjectNotFound
from casstore.format import layout


def check_marker(backend: Backend) -> int:
    """The store's format version; :class:`NotAStore` unless it is one this casstore reads."""
    try:
        raw = backend.read_bytes(layout.MARKER)
    except ObjectNotFound:
        raise NotAStore(
            f"{backend.url} is not a casstore store (no {layout.MARKER}); create one with cas init"
        ) from None
    try:
        marker = json.loads(raw)
        version = marker["casstore_format"]
    except (ValueError, KeyError, TypeError):
        raise NotAStore(f"{backend.url}: {layout.MARKER} is not a casstore marker") from None
    if not isinstance(version, int) or isinstance(version, bool) or version > layout.FORMAT_VERSION:
        raise NotAStore(
            f"{backend.url} has store format {version!r}; this casstore reads format "
            f"{layout.FORMAT_VERSION}: upgrade casstore"
        )
    return version


def _marker(version: int) -> bytes:
    marker = {
        "casstore_format": version,
        "digest": "blake3",
        "objects": f"{layout.OBJECTS}/<2 hex>/<62 hex>",
        "indexes": f"{layout.INDEX}/<pack hex> and {layout.INDEX}/m-<entries>-<hex>",
    }
    return (json.dumps(marker, indent=2) + "\n").encode()


def write_marker(backend: Backend, version: int = layout.FORMAT_VERSION) -> None:
    backend.write_bytes(layout.MARKER, _marker(version))


def initialize(backend: Backend) -> bool:
    """Write the marker unless there is one. Returns False when it was a store already."""
    try:
        check_marker(backend)
        return False
    except NotAStore:
        if backend.exists(layout.MARKER):
            raise
    write_marker(backend)
    return True
