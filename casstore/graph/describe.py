"""What kind of object each digest is, for reports (``cas gc --dry-run``, ``cas stat``):
a blob, a tree, a run manifest, a grading record, a chunked file, or a chunk."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from casstore.config import counted
from casstore.errors import CasError
from casstore.format.records import HEAD_BYTES, MAX_RECORD_BYTES, record_kind

if TYPE_CHECKING:
    from casstore.store.objects import Store

#: Record kind -> the word reports use.
NAMES = {
    "tree/1": "tree",
    "run-manifest": "run manifest",
    "grading-record": "grading record",
    "suite-record": "suite record",
}


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


@dataclass(frozen=True)
class Description:
    """What an object is, for people: its kind, and for a tree or a chunked file what
    it holds and what it really takes in the store."""

    digest: str
    kind: str
    size: int
    stored_size: int
    encoding: str
    #: A tree's files and their bytes; a chunked file's chunks.
    files: int | None = None
    file_bytes: int | None = None
    chunks: int | None = None

    def text(self) -> str:
        if self.files is not None:
            return f"tree with {counted(self.files, 'files')}"
        if self.chunks is not None:
            return f"chunked file with {self.chunks} chunks"
        return self.kind


def describe(store: Store, digest: str) -> Description:
    """The object's kind, size and real stored size (a chunked file's includes its
    chunks'), reading only records and headers."""
    info = store.stat(digest)
    kind, chunks = kind_of(store, digest)
    if chunks:
        stored = info.stored_size + sum(store.stat(c).stored_size for c in set(chunks))
        return Description(digest, kind, info.size, stored, info.encoding, chunks=len(chunks))
    if kind == "tree":
        from casstore.trees.checkout import load

        entries = [e for e in load(store, digest) if e.type == "file"]
        return Description(
            digest,
            kind,
            info.size,
            info.stored_size,
            info.encoding,
            files=len(entries),
            file_bytes=sum(e.size for e in entries),
        )
    return Description(digest, kind, info.size, info.stored_size, info.encoding)
