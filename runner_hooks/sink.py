"""Where hooks put things: the store while it answers, digests alone once it does not.

Best effort (the default): a store that cannot be opened or fails mid-run
costs one :class:`StoreUnavailableWarning`, and every later object is only
hashed, so the sidecar still names every input by digest. An input that
cannot be read at all (a missing file) is recorded as absent, with a
:class:`RecordingWarning`. ``strict=True`` raises instead of warning.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import casstore
from casstore import CasError, Ref, Store

_T = TypeVar("_T")
Source = str | os.PathLike[str]


class RecordingWarning(UserWarning):
    """Something about the run could not be recorded; the run goes on."""


class StoreUnavailableWarning(RecordingWarning):
    """The store failed; from now on digests are computed locally and nothing is stored."""


def open_store_or_none(store: str | Store | None, strict: bool) -> tuple[Store | None, str]:
    """The store to record into, or None (with the reason) when it cannot be opened."""
    if isinstance(store, Store):
        return store, ""
    try:
        return casstore.open_store(store), ""
    except (CasError, OSError) as exc:
        if strict:
            raise
        return None, str(exc)


class Sink:
    """Stores objects, or only hashes them while the store is unavailable."""

    def __init__(self, store: str | Store | None, *, strict: bool = False) -> None:
        self.strict = strict
        self.store, reason = open_store_or_none(store, strict)
        self.warned = False
        if self.store is None:
            self._unavailable(reason)

    def _unavailable(self, reason: str) -> None:
        self.store = None
        if not self.warned:
            self.warned = True
            warnings.warn(
                f"casstore: store unavailable ({reason}); the run goes on, and its "
                "sidecar holds digests of artifacts that were not stored",
                StoreUnavailableWarning,
                stacklevel=4,
            )

    def _either(
        self, what: str, stored: Callable[[Store], _T], local: Callable[[], _T]
    ) -> _T | None:
        if self.store is not None:
            try:
                return stored(self.store)
            except (CasError, OSError) as store_error:
                # The local computation tells a store failure from an unreadable input.
                try:
                    result = local()
                except (CasError, OSError, ValueError):
                    self.skip(what, store_error)
                    return None
                if self.strict:
                    raise
                self._unavailable(str(store_error))
                return result
        try:
            return local()
        except (CasError, OSError, ValueError) as exc:
            self.skip(what, exc)
            return None

    def skip(self, what: str, exc: Exception) -> None:
        """Warn that ``what`` is not recorded (raise when strict)."""
        if self.strict:
            raise exc
        warnings.warn(f"casstore: {what} not recorded: {exc}", RecordingWarning, stacklevel=4)
        return None

    def put_bytes(self, what: str, data: bytes) -> Ref | None:
        return self._either(
            what,
            lambda s: Ref(s.put_bytes(data).digest, len(data)),
            lambda: Ref(casstore.hash_bytes(data), len(data)),
        )

    def claim_ref(self, kind: str, name: str, digest: str) -> str | None:
        """A ref for what was recorded (``runs/<id>``, ``gradings/<id>``), so gc keeps it;
        a taken name gets a suffix, never overwritten. None while the store is away."""
        if self.store is None:
            return None
        try:
            return self.store.claim_ref(kind, name, digest)
        except (CasError, OSError) as exc:
            self.skip(f"ref {kind}/{name}", exc)
            return None

    def load(self, what: str, value: Any) -> Any:
        """``value`` as a JSON value (see :func:`load_json`); None, with a warning (or
        raised when strict), when it cannot be read."""
        if value is None:
            return None
        try:
            return load_json(value)
        except (OSError, ValueError) as exc:
            self.skip(what, exc)
            return None

    def put_json(self, what: str, value: Any, *, mcp: bool = False) -> Ref | None:
        """A JSON value already loaded (:meth:`load`), secrets redacted, stored canonical;
        None for None."""
        if value is None:
            return None
        try:
            data = casstore.canonical_json(casstore.redact(value, mcp=mcp))
        except ValueError as exc:
            self.skip(what, exc)
            return None
        return self.put_bytes(what, data)

    def put_file(self, what: str, path: Source) -> Ref | None:
        def stored(store: Store) -> Ref:
            info = store.put_file(path)
            return Ref(info.digest, info.size)

        return self._either(what, stored, lambda: Ref(*casstore.hash_file(path)))

    def put_tree(self, what: str, source: Source) -> Ref | None:
        def stored(store: Store) -> Ref:
            info = store.put_tree(source)
            return Ref(info.digest, info.size)

        def local() -> Ref:
            info = casstore.tree_digest(source)
            return Ref(info.digest, info.size)

        return self._either(what, stored, local)


def load_json(value: Any) -> Any:
    """A JSON value: as given, parsed from a JSON string, or read from a JSON file."""
    import json

    if isinstance(value, os.PathLike) or (isinstance(value, str) and os.path.isfile(value)):
        with open(value, encoding="utf-8") as f:
            return json.load(f)
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


def write_sidecar(path: Path, data: bytes) -> None:
    """Write atomically: a reader sees the previous sidecar or this one, never half."""
    with casstore.atomic_write(path, durable=False) as f:
        f.write(data)
