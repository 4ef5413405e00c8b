"""casstore: a content-addressed artifact store for AI-agent evaluation runs.

>>> store = open_store()                      # doctest: +SKIP
>>> info = store.put_bytes(b"hello")          # doctest: +SKIP
>>> store.get_bytes(info.digest)              # doctest: +SKIP
b'hello'

This module is the public API; ``runner_hooks`` and other integrations use
nothing else. It is imported lazily, so ``cas --help`` starts fast. The
layers behind it are mapped in ``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from casstore._version import __version__
from casstore.errors import (
    ArchiveError,
    BackendError,
    BundleError,
    CasError,
    ChunkMissing,
    ConfigError,
    DestinationError,
    IntegrityError,
    InvalidDigest,
    InvalidRefName,
    ManifestError,
    NotAStore,
    ObjectNotFound,
    ReadOnlyStore,
    RefExists,
)

if TYPE_CHECKING:
    from casstore.fileio import atomic_write
    from casstore.format.digest import format_digest, hash_bytes, hash_file, parse_digest
    from casstore.format.manifest import (
        Code,
        GradingRecord,
        Host,
        Ref,
        RunManifest,
        SuiteRecord,
        utc_timestamp,
    )
    from casstore.format.manifest import decode as decode_record
    from casstore.format.manifest import decode_as as decode_record_as
    from casstore.format.manifest import encode as encode_record
    from casstore.maintenance.lease import LeaseHeld
    from casstore.runs.invocation import current_argv
    from casstore.runs.provenance import code_provenance, host_provenance
    from casstore.runs.recording import (
        MANIFEST_SUFFIX,
        Recorded,
        Recording,
        record_run,
        sidecar_path,
    )
    from casstore.runs.records import read_record, read_record_bytes
    from casstore.runs.redaction import Redactor, canonical_json, redact
    from casstore.runs.sink import (
        RecordingWarning,
        Sink,
        StoreUnavailableWarning,
        load_json,
    )
    from casstore.runs.suites import diff_suites, record_suite, suite_problems
    from casstore.store.objects import ObjectInfo, Store
    from casstore.store.open import init_store, open_store
    from casstore.trees.ingest import TreeInfo, tree_digest

_LAZY = {
    "LeaseHeld": "casstore.maintenance.lease",
    "atomic_write": "casstore.fileio",
    "Code": "casstore.format.manifest",
    "GradingRecord": "casstore.format.manifest",
    "Host": "casstore.format.manifest",
    "Ref": "casstore.format.manifest",
    "RunManifest": "casstore.format.manifest",
    "utc_timestamp": "casstore.format.manifest",
    "decode_record": "casstore.format.manifest:decode",
    "decode_record_as": "casstore.format.manifest:decode_as",
    "encode_record": "casstore.format.manifest:encode",
    "code_provenance": "casstore.runs.provenance",
    "host_provenance": "casstore.runs.provenance",
    "read_record": "casstore.runs.records",
    "read_record_bytes": "casstore.runs.records",
    "canonical_json": "casstore.runs.redaction",
    "redact": "casstore.runs.redaction",
    "Redactor": "casstore.runs.redaction",
    "MANIFEST_SUFFIX": "casstore.runs.recording",
    "Recorded": "casstore.runs.recording",
    "Recording": "casstore.runs.recording",
    "record_run": "casstore.runs.recording",
    "record_suite": "casstore.runs.suites",
    "suite_problems": "casstore.runs.suites",
    "diff_suites": "casstore.runs.suites",
    "SuiteRecord": "casstore.format.manifest",
    "current_argv": "casstore.runs.invocation",
    "sidecar_path": "casstore.runs.recording",
    "RecordingWarning": "casstore.runs.sink",
    "Sink": "casstore.runs.sink",
    "StoreUnavailableWarning": "casstore.runs.sink",
    "load_json": "casstore.runs.sink",
    "TreeInfo": "casstore.trees.ingest",
    "tree_digest": "casstore.trees.ingest",
    "ObjectInfo": "casstore.store.objects",
    "Store": "casstore.store.objects",
    "open_store": "casstore.store.open",
    "init_store": "casstore.store.open",
    "format_digest": "casstore.format.digest",
    "hash_bytes": "casstore.format.digest",
    "hash_file": "casstore.format.digest",
    "parse_digest": "casstore.format.digest",
}

__all__ = [
    "MANIFEST_SUFFIX",
    "ArchiveError",
    "BackendError",
    "BundleError",
    "CasError",
    "ChunkMissing",
    "Code",
    "ConfigError",
    "DestinationError",
    "GradingRecord",
    "Host",
    "IntegrityError",
    "InvalidDigest",
    "InvalidRefName",
    "LeaseHeld",
    "ManifestError",
    "NotAStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ReadOnlyStore",
    "Recorded",
    "Recording",
    "RecordingWarning",
    "Redactor",
    "Ref",
    "RefExists",
    "RunManifest",
    "Sink",
    "Store",
    "StoreUnavailableWarning",
    "SuiteRecord",
    "TreeInfo",
    "__version__",
    "atomic_write",
    "canonical_json",
    "code_provenance",
    "current_argv",
    "decode_record",
    "decode_record_as",
    "diff_suites",
    "encode_record",
    "format_digest",
    "hash_bytes",
    "hash_file",
    "host_provenance",
    "init_store",
    "load_json",
    "open_store",
    "parse_digest",
    "read_record",
    "read_record_bytes",
    "record_run",
    "record_suite",
    "redact",
    "sidecar_path",
    "suite_problems",
    "tree_digest",
    "utc_timestamp",
]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'casstore' has no attribute {name!r}")
    import importlib

    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute or name)
