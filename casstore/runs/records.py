"""Finding a run's record: by digest in a store, or from its sidecar file."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from casstore.errors import ManifestError, ObjectNotFound
from casstore.format.digest import hash_bytes
from casstore.format.manifest import Record, decode
from casstore.format.tree import DEFAULT_LIMITS

if TYPE_CHECKING:
    from casstore.store.objects import Store


def read_record_bytes(spec: str, store: Callable[[], Store] | Store | None) -> tuple[str, bytes]:
    """The digest and bytes named by ``spec``: a sidecar file, else a digest, prefix
    or tag in ``store`` (a Store, or a function opening one only when needed)."""
    if os.path.isfile(spec):
        DEFAULT_LIMITS.check_size(os.path.getsize(spec), spec)
        with open(spec, "rb") as f:
            data = f.read()
        return hash_bytes(data), data
    if store is None:
        raise ManifestError(f"{spec}: no such file, and no store to look it up in")
    opened = store() if callable(store) else store
    try:
        digest = opened.resolve(spec)
    except ObjectNotFound as exc:
        if spec.endswith(".json") or spec.startswith((".", os.sep)):  # meant as a file
            raise ObjectNotFound(spec, f"{spec}: no such file, and {exc}") from None
        raise
    return digest, opened.get_record(digest)


def read_record(spec: str, store: Callable[[], Store] | Store | None) -> tuple[str, Record]:
    """The digest and decoded record (run manifest or grading record) named by ``spec``."""
    digest, data = read_record_bytes(spec, store)
    return digest, decode(data, spec if os.path.isfile(spec) else digest)
