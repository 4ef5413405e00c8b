"""Record how a suite's score was computed from its graded tasks."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import casstore
from casstore import Store

Entry = tuple[str | os.PathLike[str], Mapping[str, str]] | Mapping[str, Any]


def record_suite(name: str, entries: Iterable[Entry], *, store: str | Store | None = None) -> str:
    """Store a suite and return its digest (kept as ``suites/<name>``).

    Each entry is a grading record (its digest, ref or sidecar file) with labels,
    as ``(grading, {"domain": "Law", "task": "t-17"})`` or ``{"grading": ...,
    "labels": {...}}``. The suite holds each entry's score and the means overall
    and per label value; ``cas verify`` recomputes them from the gradings.
    Unlike a run, a suite is recorded strictly: without a store, it raises.
    """
    pairs = []
    for entry in entries:
        if isinstance(entry, Mapping):
            pairs.append((entry["grading"], dict(entry.get("labels") or {})))
        else:
            grading, labels = entry
            pairs.append((grading, dict(labels)))
    opened = store if isinstance(store, Store) else casstore.open_store(store)
    return casstore.record_suite(opened, name, pairs)[0]
