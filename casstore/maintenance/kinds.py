"""What kind of object each digest is, for reports (``cas gc --dry-run``, ``cas stat``):
a blob, a tree, a run manifest, a grading record, a chunked file, or a chunk."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from casstore.errors import CasError
from casstore.format.records import HEAD_BYTES, MAX_RECORD_BYTES, record_kind

if TYPE_CHECKING:
    from casstore.store.objects import Store

#: Record kind -> the word reports use.
NAMES = {"tree/1": "tree", "run-manifest": "run manifest", "grading-record": "grading record"}


def kind_of(store: Store, digest: str) -> tuple[str, list[str]]:
    """(kind, chunks): the kind from the object's first bytes, and a chunked file's chunks."""
    with store.open_stored(digest) as reader:
        if reader.chunks is not None:
            return "chunked file", [chunk for chunk, _ in reader.chunks]
        if reader.size > MAX_RECORD_BYTES:
            return "blob", []
        kind = record_kind(reader.read(HEAD_BYTES))
    return (NAMES.get(kind, kind) if kind else "blob"), []


def kinds_of(store: Store, digests: Iterable[str]) -> dict[str, str]:
    """The kind of each digest; chunks of a chunked file among them are ``chunk``."""
    kinds: dict[str, str] = {}
    chunks: set[str] = set()
    for digest in dict.fromkeys(digests):
        try:
            kinds[digest], found = kind_of(store, digest)
        except CasError:
            kinds[digest] = "unreadable"
            continue
        chunks.update(found)
    for chunk in chunks & kinds.keys():
        kinds[chunk] = "chunk"
    return kinds
