"""Rewriting a pack: its objects read and verified, the ones to keep written to a new
pack, and the old pack removed. The one repack, used by gc (dropping unreachable
objects) and fsck (setting a damaged pack aside), as restic's ``repack`` serves
prune, copy and repair."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from casstore.errors import CasError, ObjectNotFound
from casstore.format import layout
from casstore.format.digest import hash_bytes

if TYPE_CHECKING:
    from casstore.store.objects import Store


@dataclass
class PackContents:
    """What a pack holds, read back: verified contents, and the digests that failed."""

    pack: str
    contents: dict[str, bytes] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)


def read_pack(store: Store, pack: str, members: list[str]) -> PackContents:
    """Read and verify every member of ``pack``; nothing is changed."""
    result = PackContents(pack)
    for digest in members:
        where = store.packs.get(digest)
        content = b""
        if where is not None and where.pack == pack:
            try:
                content = store.packs.read(digest, where)
            except CasError:
                content = b""
        if hash_bytes(content) == digest:
            result.contents[digest] = content
        else:
            result.damaged.append(digest)
    return result


def rewrite_pack(
    store: Store,
    read: PackContents,
    keep: Callable[[str], bool],
    *,
    quarantine: bool = False,
) -> str | None:
    """Write the verified objects ``keep`` accepts to a new pack, then remove the old
    pack: deleted, or moved to ``quarantine/`` byte for byte. Returns the quarantine
    key when it was moved.

    The new pack and its index are published first, then the old index is deleted
    (the pack is then invisible, never half-visible), then the pack itself.
    """
    with store.batch() as writer:
        for digest, content in read.contents.items():
            if keep(digest):
                writer.put_bytes(content, known_absent=True)
    if read.pack in writer.published_packs:
        # The kept objects make the very same bytes (only empty objects were dropped):
        # the pack is its own rewrite, and must stay.
        return None
    backend = store.backend
    backend.delete_many([layout.index_key(read.pack)])
    key = layout.pack_key(read.pack)
    if not quarantine:
        backend.delete_many([key])
        return None
    try:
        backend.move(key, layout.quarantine_key(key))
    except ObjectNotFound:
        return None
    return layout.quarantine_key(key)
