"""Damaging stored objects in place, loose or packed, as a disk or a bad copy would."""

from __future__ import annotations

from casstore.format import layout
from casstore.store.objects import Store


def flip_stored_byte(store: Store, digest: str) -> None:
    """Flip one stored byte of ``digest``: the last of a loose object, or one in the
    middle of the compressed block of a pack that holds it."""
    where = store.packs.get(digest)
    if where is None:
        key = layout.object_key(digest)
        stored = bytearray(store.backend.read_bytes(key))
        stored[-1] ^= 0x01
    else:
        key = where.key
        stored = bytearray(store.backend.read_bytes(key))
        stored[where.block_offset + where.block_length // 2] ^= 0x01
    store.backend.write_bytes(key, bytes(stored))
