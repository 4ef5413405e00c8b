"""Where a recording puts things: the store while it answers, else a local spool.

Best effort (the default): a store that cannot be opened or fails mid-run
costs one :class:`StoreUnavailableWarning`, and the run's objects go to a
local spool store instead (``[record] spool`` in store.toml, default
``~/.cache/casstore/spool``); ``cas push --spool`` sends them, verified, once
the store is back. Should the spool fail too, objects are only hashed, so
the sidecar still names every input by digest. An input that cannot be read
(a missing file) is recorded as absent, with a :class:`RecordingWarning`.
``strict=True`` raises instead of warning. Every problem is also logged on the
``casstore`` logger, and warned at the caller's line, not casstore's.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from casstore.errors import CasError
from casstore.format.digest import hash_bytes, hash_file
from casstore.format.manifest import Ref
from casstore.runs.spool import configured_spool
from casstore.store.objects import Store

_T = TypeVar("_T")
Source = str | os.PathLike[str]
log = logging.getLogger("casstore")
# A library's logger: records reach the application's handlers (loguru, Datadog...)
# when it has some, and Python's last-resort handler does not print them a second
# time beside the warning when it has none.
log.addHandler(logging.NullHandler())
_OURS = (os.sep + "casstore" + os.sep, os.sep + "runner_hooks" + os.sep)


class RecordingWarning(UserWarning):
    """Something about the run could not be recorded; the run goes on."""


class StoreUnavailableWarning(RecordingWarning):
    """The store failed; the run's objects go to the local spool from now on."""


def warn(message: str, category: type[Warning] = RecordingWarning) -> None:
    """Log ``message`` on the ``casstore`` logger and warn at the caller's own line (the
    first frame outside casstore and runner_hooks), where its author will look."""
    log.warning(message)
    frame = sys._getframe(1)
    while frame.f_back is not None and any(part in frame.f_code.co_filename for part in _OURS):
        frame = frame.f_back
    warnings.warn_explicit(
        message,
        category,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=frame.f_globals.get("__name__"),
    )


class Sink:
    """Stores a recording's objects: in the store, else the spool, else only hashed."""

    def __init__(
        self, store: str | Store | None, *, strict: bool = False, spool: Source | None = None
    ) -> None:
        self.strict = strict
        self.spool_path = Path(spool) if spool is not None else None
        #: Where the run belongs (a URL), to push a spooled run to later.
        self.target: str | None = store.url if isinstance(store, Store) else store
        #: Set once objects go to the spool instead of the store.
        self.spooled = False
        self.store: Store | None = None
        if isinstance(store, Store):
            self.store = store
            return
        try:
            from casstore.store.open import open_store

            self.store = open_store(store)
            self.target = self.store.url
        except (CasError, OSError) as exc:
            if strict:
                raise
            self.target = self.target or _configured_target()
            self._to_spool(str(exc))

    def _to_spool(self, reason: str) -> None:
        if self.spooled:
            return
        from casstore.store.open import init_store

        self.spooled = True
        path = self.spool_path or configured_spool()
        try:
            self.store, _ = init_store(str(path))
        except (CasError, OSError) as exc:
            self.store = None
            warn(
                f"casstore: store unavailable ({reason}), and the spool {path} too ({exc}); "
                "the run goes on, and its sidecar holds digests of what was not stored",
                StoreUnavailableWarning,
            )
            return
        warn(
            f"casstore: store unavailable ({reason}); the run goes on, its objects go to the "
            f"spool {path}: `cas push --spool` sends them when the store is back",
            StoreUnavailableWarning,
        )

    def _either(
        self, what: str, stored: Callable[[Store], _T], local: Callable[[], _T]
    ) -> _T | None:
        for _attempt in range(2):
            if self.store is None:
                break
            try:
                return stored(self.store)
            except (CasError, OSError) as store_error:
                # The local computation tells a store failure from an unreadable input.
                try:
                    local()
                except (CasError, OSError, ValueError):
                    self.skip(what, store_error)
                    return None
                if self.strict:
                    raise
                if self.spooled:
                    self.store = None  # the spool failed too: digests only from now on
                    break
                self._to_spool(str(store_error))
        try:
            return local()
        except (CasError, OSError, ValueError) as exc:
            self.skip(what, exc)
            return None

    def problem(self, message: str) -> None:
        """Something recorded is not what it should be: raise when strict, else warn."""
        if self.strict:
            raise CasError(message)
        warn(message)

    def skip(self, what: str, exc: Exception) -> None:
        """Warn that ``what`` is not recorded (raise when strict)."""
        if self.strict:
            raise exc
        warn(f"casstore: {what} not recorded: {exc}")

    def put_bytes(self, what: str, data: bytes) -> Ref | None:
        return self._either(
            what,
            lambda s: Ref(s.put_bytes(data).digest, len(data)),
            lambda: Ref(hash_bytes(data), len(data)),
        )

    def put_file(self, what: str, path: Source) -> Ref | None:
        def stored(store: Store) -> Ref:
            info = store.put_file(path)
            return Ref(info.digest, info.size)

        return self._either(what, stored, lambda: Ref(*hash_file(path)))

    def put_tree(self, what: str, source: Source) -> Ref | None:
        from casstore.trees.ingest import tree_digest

        def stored(store: Store) -> Ref:
            info = store.put_tree(source)
            return Ref(info.digest, info.size)

        def local() -> Ref:
            info = tree_digest(source)
            return Ref(info.digest, info.size)

        return self._either(what, stored, local)

    def claim_ref(
        self, kind: str, name: str, digest: str, *, supersedes: str | None = None
    ) -> str | None:
        """A ref for what was recorded (``runs/<id>``), so gc keeps it; a taken name gets
        a suffix, never overwritten (but see ``supersedes`` of :func:`claim_ref`)."""
        if self.store is None:
            return None
        try:
            ref = self.store.claim_ref(kind, name, digest, supersedes=supersedes)
        except (CasError, OSError) as exc:
            self.skip(f"ref {kind}/{name}", exc)
            return None
        return ref


def _configured_target() -> str | None:
    """The URL of the store that would have been opened, to push a spooled run to later."""
    from casstore.config import load_config, resolve_location

    try:
        return resolve_location(None, load_config()).url
    except CasError:
        return None


def load_json(value: Any) -> Any:
    """A JSON value: as given, parsed from a JSON string, or read from a JSON file
    (ValueError when it is not JSON, nested too deep included)."""
    try:
        if isinstance(value, os.PathLike) or (isinstance(value, str) and os.path.isfile(value)):
            with open(value, encoding="utf-8") as f:
                return json.load(f)
        if isinstance(value, str | bytes):
            return json.loads(value)
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None
    return value
