"""Rewriting packs: their objects read and verified, the ones to keep written to a new
pack, the old packs' index entries dropped, and the old packs removed. The one
repack, used by gc (dropping unreachable objects) and fsck (setting damaged packs
aside), as restic's ``repack`` serves prune, copy and repair."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from casstore.errors import CasError, ObjectNotFound
from casstore.format import layout
from casstore.format.digest import hash_bytes
from casstore.store.compact import drop_packs

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
        content = b""
        for where in store.packs.candidates(digest):
            if where.pack == pack:
                try:
                    content = store.blocks.read(digest, where)
                except CasError:
                    content = b""
                break
        if hash_bytes(content) == digest:
            result.contents[digest] = content
        else:
            result.damaged.append(digest)
    return result


def rewrite_packs(
    store: Store,
    reads: list[PackContents],
    keep: Callable[[str], bool],
    *,
    quarantine: bool = False,
) -> list[str]:
    """Write the verified objects ``keep`` accepts to a new pack, then remove the old
    packs: deleted, or moved to ``quarantine/`` byte for byte. Returns the keys moved
    to the quarantine.

    The new pack and its index are published first, then the old packs' entries
    leave every index (they are then invisible, never half-visible), then the
    packs themselves go.
    """
    with store.batch() as writer:
        for read in reads:
            for digest, content in read.contents.items():
                if keep(digest):
                    writer.put_bytes(content, known_absent=True)
    # A pack whose kept objects make its very bytes again (only empty objects were
    # dropped) is its own rewrite, and stays.
    gone = [read.pack for read in reads if read.pack not in writer.published_packs]
    drop_packs(store, gone)
    backend = store.backend
    keys = [layout.pack_key(pack) for pack in gone]
    if not quarantine:
        backend.delete_many(keys)
        return []
    moved = []
    for key in keys:
        try:
            backend.move(key, layout.quarantine_key(key))
        except ObjectNotFound:
            continue
        moved.append(layout.quarantine_key(key))
    return moved
