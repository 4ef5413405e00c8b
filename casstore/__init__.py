"""casstore: a content-addressed artifact store for AI-agent evaluation runs.

>>> store = open_store()                      # doctest: +SKIP
>>> info = store.put_bytes(b"hello")          # doctest: +SKIP
>>> store.get_bytes(info.digest)              # doctest: +SKIP
b'hello'

The public API is imported lazily, so ``cas --help`` starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from casstore._version import __version__
from casstore.errors import (
    BackendError,
    CasError,
    ConfigError,
    IntegrityError,
    InvalidDigest,
    InvalidRefName,
    NotAStore,
    ObjectNotFound,
)

if TYPE_CHECKING:
    from casstore.digest import format_digest, hash_bytes, parse_digest
    from casstore.store import ObjectInfo, Store, init_store, open_store

_LAZY = {
    "ObjectInfo": "casstore.store",
    "Store": "casstore.store",
    "open_store": "casstore.store",
    "init_store": "casstore.store",
    "format_digest": "casstore.digest",
    "hash_bytes": "casstore.digest",
    "parse_digest": "casstore.digest",
}

__all__ = [
    "BackendError",
    "CasError",
    "ConfigError",
    "IntegrityError",
    "InvalidDigest",
    "InvalidRefName",
    "NotAStore",
    "ObjectInfo",
    "ObjectNotFound",
    "Store",
    "__version__",
    "format_digest",
    "hash_bytes",
    "init_store",
    "open_store",
    "parse_digest",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'casstore' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
