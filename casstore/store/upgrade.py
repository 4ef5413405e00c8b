"""Upgrading a store to the current format, in place: idempotent and interruptible.

Format 1 to 2 (``docs/FORMAT.md``): trash batches are sealed (their grace
period counts from now), the marker is set to 2, so that format-1 readers,
which would not see merged indexes, refuse the store clearly from then on;
then every index file is merged into one. A store interrupted after the
marker is a valid format-2 store (pack indexes are read as they are); a
rerun merges what is left.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from casstore.format import layout
from casstore.store.compact import consolidate
from casstore.store.marker import check_marker, write_marker

if TYPE_CHECKING:
    from casstore.store.objects import Store


def upgrade(store: Store) -> int:
    """Bring ``store`` to the current format and merge its index files; returns the
    format it had."""
    store.require_writable("upgrade")
    version = check_marker(store.backend)
    if version < layout.FORMAT_VERSION:
        batches = {
            batch
            for key in store.backend.list(layout.TRASH)
            if (batch := layout.trash_batch_of_key(key)) is not None
        }
        store.backend.create_many([(layout.trash_seal_key(b), b"") for b in sorted(batches)])
        write_marker(store.backend)
    store.format_version = layout.FORMAT_VERSION
    consolidate(store)
    return version
