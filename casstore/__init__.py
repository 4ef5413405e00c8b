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
    ManifestError,
    NotAStore,
    ObjectNotFound,
)

if TYPE_CHECKING:
    from casstore.digest import format_digest, hash_bytes, hash_file, parse_digest
    from casstore.manifest import Code, GradingRecord, Host, Ref, RunManifest
    from casstore.manifest import decode as decode_record
    from casstore.manifest import encode as encode_record
    from casstore.provenance import code_provenance
    from casstore.redaction import canonical_json, redact
    from casstore.snapshot import TreeInfo, tree_digest
    from casstore.store import ObjectInfo, Store, init_store, open_store

_LAZY = {
    "Code": "casstore.manifest",
    "GradingRecord": "casstore.manifest",
    "Host": "casstore.manifest",
    "Ref": "casstore.manifest",
    "RunManifest": "casstore.manifest",
    "decode_record": "casstore.manifest:decode",
    "encode_record": "casstore.manifest:encode",
    "code_provenance": "casstore.provenance",
    "canonical_json": "casstore.redaction",
    "redact": "casstore.redaction",
    "TreeInfo": "casstore.snapshot",
    "tree_digest": "casstore.snapshot",
    "hash_file": "casstore.digest",
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
    "Code",
    "ConfigError",
    "GradingRecord",
    "Host",
    "IntegrityError",
    "InvalidDigest",
    "InvalidRefName",
    "ManifestError",
    "NotAStore",
    "ObjectInfo",
    "ObjectNotFound",
    "Ref",
    "RunManifest",
    "Store",
    "TreeInfo",
    "__version__",
    "canonical_json",
    "code_provenance",
    "decode_record",
    "encode_record",
    "format_digest",
    "hash_bytes",
    "hash_file",
    "init_store",
    "open_store",
    "parse_digest",
    "redact",
    "tree_digest",
]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'casstore' has no attribute {name!r}")
    import importlib

    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute or name)
