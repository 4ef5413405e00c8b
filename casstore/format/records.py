"""Records: canonical JSON objects whose first key, ``"casstore"``, names their kind.

The one place that recognises a record from its first bytes, lists what it
references, and bounds how large a record may be (``docs/FORMAT.md`` section 5).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from casstore.format.digest import DIGEST_PATTERN

RECORD_MAGIC = b'{"casstore":"'
#: Enough leading bytes to recognise any record kind.
HEAD_BYTES = 64
#: The largest record casstore reads into memory. A larger object is a plain blob:
#: never parsed, never walked. A tree of about a million files fits.
MAX_RECORD_BYTES = 256 << 20

TREE_KIND = "tree/1"
RUN_KIND = "run-manifest"
GRADING_KIND = "grading-record"
SUITE_KIND = "suite-record"


def record_kind(head: bytes) -> str | None:
    """The record kind (``"tree/1"``, ``"run-manifest"``...) when ``head`` starts a
    casstore record; None for anything else."""
    if not head.startswith(RECORD_MAGIC):
        return None
    rest = head[len(RECORD_MAGIC) : HEAD_BYTES]
    end = rest.find(b'"')
    if end <= 0:
        return None
    try:
        return rest[:end].decode("ascii")
    except UnicodeDecodeError:
        return None


def is_tree_kind(kind: str | None) -> bool:
    return kind is not None and kind.startswith("tree/")


def references(record: Any) -> Iterator[str]:
    """Every full digest string anywhere inside a decoded record (nothing that is not
    a reference holds one). The order is fixed, so closures and bundles are too."""
    stack = [record]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if DIGEST_PATTERN.fullmatch(item):
                yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
