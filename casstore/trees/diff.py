"""What changed between two trees: added, removed and modified paths."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from casstore.format.tree import Entry

if TYPE_CHECKING:
    from casstore.trees.protocol import ObjectReader


@dataclass(frozen=True)
class Change:
    path: str
    old: Entry | None
    new: Entry | None

    @property
    def kind(self) -> str:
        return "added" if self.old is None else "removed" if self.new is None else "modified"

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"path": self.path, "change": self.kind}
        for label, entry in (("old", self.old), ("new", self.new)):
            if entry is not None:
                out[label] = entry.as_record()
        return out


@dataclass
class TreeDiff:
    added: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)
    modified: list[Change] = field(default_factory=list)

    @property
    def changes(self) -> list[Change]:
        return sorted(self.added + self.removed + self.modified, key=lambda c: c.path)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.modified)

    def summary(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "modified": len(self.modified),
        }


def diff_entries(old: list[Entry], new: list[Entry]) -> TreeDiff:
    before = {e.path: e for e in old}
    after = {e.path: e for e in new}
    result = TreeDiff()
    for path, entry in before.items():
        other = after.get(path)
        if other is None:
            result.removed.append(Change(path, entry, None))
        elif other != entry:
            result.modified.append(Change(path, entry, other))
    result.added = [Change(p, None, e) for p, e in after.items() if p not in before]
    return result


def diff_trees(store: ObjectReader, a: str, b: str) -> TreeDiff:
    """The difference between stored trees ``a`` and ``b``."""
    from casstore.trees.checkout import load

    return diff_entries(load(store, a), load(store, b))
