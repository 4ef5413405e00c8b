"""The local spool: where a recording's objects wait while its store is unreachable.

A spool is an ordinary local store (``[record] spool`` in store.toml, default
``~/.cache/casstore/spool``). Each run recorded into it is listed under
``pending/<hex>.json`` with the store it belongs to; :func:`push_spooled` (``cas
push --spool``) copies each run's closure there, verified, and then forgets it.
A run whose store failed part way holds objects in both places: what the spool
lacks must already be at the destination.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casstore.errors import CasError, ConfigError
from casstore.fileio import atomic_write
from casstore.format.manifest import utc_timestamp

if TYPE_CHECKING:
    from casstore.graph.transfer import TransferResult
    from casstore.store.objects import Store

#: In a spool store: one JSON file per run waiting to be pushed to its store.
PENDING = "pending"
#: Beside a spooled run's sidecar, until it is pushed.
SPOOLED_SUFFIX = ".spooled"


def default_spool() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "casstore" / "spool"


def configured_spool() -> Path:
    """The spool ``[record] spool`` of store.toml names, else the default one."""
    from casstore.config import load_config, normalize_url

    try:
        config = load_config()
    except CasError:
        return default_spool()
    configured = config.file.record.spool
    return Path(normalize_url(configured, config.base_dir)) if configured else default_spool()


@dataclass(frozen=True)
class Pending:
    run: str
    #: The run's ref in the spool (``runs/<id>``), claimed again at the destination.
    ref: str | None
    #: The URL of the store the run belongs to.
    target: str | None
    spooled_at: str
    sidecar: str | None
    path: Path


def add_pending(
    spool: Store, run: str, ref: str | None, target: str | None, sidecar: Path | None
) -> None:
    entry = {
        "run": run,
        "ref": ref,
        "target": target,
        "spooled_at": utc_timestamp(),
        "sidecar": str(sidecar.absolute()) if sidecar is not None else None,
    }
    path = Path(spool.url) / PENDING / f"{run.removeprefix('blake3:')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(json.dumps(entry).encode())


def pending(spool: Path) -> Iterator[Pending]:
    """The runs waiting in ``spool``, oldest first."""
    entries = []
    for path in sorted((spool / PENDING).glob("*.json")):
        try:
            data: dict[str, Any] = json.loads(path.read_bytes())
            entries.append(
                Pending(
                    run=str(data["run"]),
                    ref=data.get("ref"),
                    target=data.get("target"),
                    spooled_at=str(data.get("spooled_at", "")),
                    sidecar=data.get("sidecar"),
                    path=path,
                )
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CasError(f"{path}: not a pending run of a spool ({exc})") from None
    return iter(sorted(entries, key=lambda e: e.spooled_at))


def push_spooled(
    spool: Store,
    open_target: Callable[[str], Store],
    *,
    to: str | None = None,
    on_run: Callable[[Pending, str, TransferResult, str | None], None] | None = None,
    on_object: Callable[[int], None] | None = None,
) -> int:
    """Copy every pending run of ``spool`` to its store (or ``to``), verified; returns how
    many were pushed. Each run's ref is claimed there (a taken name gets a suffix), and
    the run is then forgotten by the spool: its entry, its ref there, the note beside
    its sidecar. ``open_target`` opens a store by URL."""
    from casstore.graph.transfer import transfer
    from casstore.store.refs import claim_ref, delete_ref, split_ref

    count = 0
    for entry in pending(Path(spool.url)):
        url = to or entry.target
        if not url:
            raise ConfigError(f"{entry.run} was spooled with no store to go to: pass --to REMOTE")
        dst = open_target(url)
        result = transfer(spool, dst, [entry.run], on_object=on_object, absent_ok=True)
        ref = None
        if entry.ref is not None:
            kind, name = split_ref(entry.ref)
            ref = claim_ref(dst, kind, name, entry.run)
            with contextlib.suppress(CasError):  # already gone: nothing to forget
                delete_ref(spool, entry.ref)
        entry.path.unlink()
        if entry.sidecar is not None:
            Path(entry.sidecar + SPOOLED_SUFFIX).unlink(missing_ok=True)
        count += 1
        if on_run is not None:
            on_run(entry, dst.url, result, ref)
    return count
