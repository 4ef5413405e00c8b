"""Finding a run's record: by digest in a store, or from its sidecar file."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from casstore.errors import ManifestError
from casstore.format.digest import hash_bytes
from casstore.format.manifest import Record, decode
from casstore.format.records import MAX_RECORD_BYTES

if TYPE_CHECKING:
    from casstore.store.objects import Store


def read_record_bytes(spec: str, store: Callable[[], Store] | Store | None) -> tuple[str, bytes]:
    """The digest and bytes named by ``spec``: a sidecar file, else a digest, prefix
    or tag in ``store`` (a Store, or a function opening one only when needed)."""
    if os.path.isfile(spec):
        if os.path.getsize(spec) > MAX_RECORD_BYTES:
            raise ManifestError(f"{spec}: too large to be a run manifest or grading record")
        with open(spec, "rb") as f:
            data = f.read()
        return hash_bytes(data), data
    if store is None:
        raise ManifestError(f"{spec}: no such file, and no store to look it up in")
    opened = store() if callable(store) else store
    digest = opened.resolve(spec)
    with opened.open(digest) as reader:
        if reader.size > MAX_RECORD_BYTES:
            raise ManifestError(f"{digest}: too large to be a run manifest or grading record")
        data = reader.read()
    return digest, data


def read_record(spec: str, store: Callable[[], Store] | Store | None) -> tuple[str, Record]:
    """The digest and decoded record (run manifest or grading record) named by ``spec``."""
    digest, data = read_record_bytes(spec, store)
    return digest, decode(data, spec if os.path.isfile(spec) else digest)
