"""Verify a run, a grading record, a suite or a tree: every object of its closure exists and
re-hashes to its digest, reported by role (``final_snapshot: 3 objects missing``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from casstore.errors import (
    ArchiveError,
    ChunkMissing,
    IntegrityError,
    ManifestError,
    ObjectNotFound,
)
from casstore.format.manifest import GradingRecord, RunManifest, SuiteRecord, decode_as
from casstore.format.records import GRADING_KIND, RUN_KIND, SUITE_KIND
from casstore.graph.closure import kind_of_stored, walk
from casstore.store.reread import reread
from casstore.trees.checkout import load
from casstore.trees.diff import TreeDiff, diff_entries

if TYPE_CHECKING:
    from casstore.store.objects import Store

OK, MISSING, CORRUPT = "ok", "missing", "corrupt"


@dataclass
class RoleReport:
    """What verifying one role (an input, an output, the record itself) found."""

    role: str
    digest: str
    objects: int = 0
    size: int = 0
    missing: list[str] = field(default_factory=list)
    #: Corrupt digest -> what is wrong with it.
    corrupt: dict[str, str] = field(default_factory=dict)
    #: What a sound role says, where it is not objects read ("recomputed from 20 gradings").
    summary: str | None = None

    @property
    def status(self) -> str:
        return CORRUPT if self.corrupt else MISSING if self.missing else OK

    def as_json(self) -> dict[str, object]:
        return {
            "role": self.role,
            "digest": self.digest,
            "status": self.status,
            "objects": self.objects,
            "bytes": self.size,
            "missing": self.missing,
            "corrupt": self.corrupt,
        }


@dataclass
class VerifyReport:
    root: str
    #: ``run-manifest``, ``grading-record``, ``tree/1``, or None for a plain object.
    kind: str | None
    roles: list[RoleReport] = field(default_factory=list)

    @property
    def status(self) -> str:
        statuses = {r.status for r in self.roles}
        return CORRUPT if CORRUPT in statuses else MISSING if MISSING in statuses else OK

    def as_json(self) -> dict[str, object]:
        return {
            "digest": self.root,
            "kind": self.kind,
            "status": self.status,
            "roles": [r.as_json() for r in self.roles],
        }


def _roles(store: Store, root: str, kind: str | None) -> list[tuple[str, str, bool]]:
    """(role, digest, walk its closure?) for the root; the record itself is shallow."""
    if kind == RUN_KIND:
        run = decode_as(RunManifest, store.get_record(root), root)
        return [("manifest", root, False)] + [
            (r, ref.digest, True) for r, ref in run.roles().items()
        ]
    if kind == GRADING_KIND:
        grading = decode_as(GradingRecord, store.get_record(root), root)
        roles = [("grading_record", root, False)]
        roles += [(r, ref.digest, r != "run") for r, ref in grading.roles().items()]
        try:
            run = decode_as(RunManifest, store.get_record(grading.run.digest), grading.run.digest)
        except (ObjectNotFound, IntegrityError, ManifestError):
            return roles  # the "run" role reports it
        roles += [(f"run.{r}", ref.digest, True) for r, ref in run.roles().items()]
        return roles
    if kind == SUITE_KIND:
        suite = decode_as(SuiteRecord, store.get_record(root), root)
        return [("suite_record", root, False)] + [
            (r, ref.digest, True) for r, ref in suite.roles().items()
        ]
    return [("tree" if kind else "object", root, True)]


def verify_closure(
    store: Store,
    root: str,
    *,
    jobs: int = 16,
    on_plan: Callable[[int], None] | None = None,
    on_object: Callable[[], None] | None = None,
) -> VerifyReport:
    """Verify ``root`` and everything it references, role by role.

    A missing root raises ObjectNotFound; everything else is reported. Objects
    are re-hashed from the store itself (never a cache), ``jobs`` at a time.
    """
    try:
        kind = kind_of_stored(store, root)
        roles = _roles(store, root, kind)
    except IntegrityError as exc:
        report = VerifyReport(root, None, [RoleReport("record", root, 1)])
        report.roles[0].corrupt[root] = str(exc)
        return report
    report = VerifyReport(root, kind)
    members: dict[str, list[str]] = {}
    for role, digest, deep in roles:
        entry = RoleReport(role, digest)
        report.roles.append(entry)
        if not deep:
            members[role] = [digest]
            continue
        try:
            closure = walk(store, [digest])
        except ObjectNotFound:
            entry.missing.append(digest)
            members[role] = []
            continue
        except IntegrityError as exc:
            entry.corrupt[digest] = str(exc)
            members[role] = []
            continue
        entry.missing.extend(closure.missing)
        members[role] = closure.order
    unique = list(dict.fromkeys(d for digests in members.values() for d in digests))
    if on_plan is not None:
        on_plan(len(unique))

    found = reread(store, unique, jobs=jobs, on_object=on_object)
    for entry in report.roles:
        for digest in members[entry.role]:
            checked = found[digest]
            entry.objects += 1
            entry.size += checked.size
            if checked.missing:
                entry.missing.append(digest)
            elif checked.missing_chunk is not None:
                entry.corrupt[digest] = str(ChunkMissing(digest, checked.missing_chunk))
            elif checked.problem is not None:
                entry.corrupt[digest] = checked.problem
    return report


@dataclass
class LocalCheck:
    """A local file or snapshot compared with what a run manifest recorded for it."""

    role: str
    path: str
    #: The recorded digest; None when the manifest has nothing under that role.
    expected: str | None
    actual: str
    #: For a snapshot that differs: what differs, file by file (when the stored tree is
    #: available to compare with).
    diff: TreeDiff | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.expected == self.actual

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "role": self.role,
            "path": self.path,
            "status": "ok" if self.ok else "mismatch",
            "expected": self.expected,
            "actual": self.actual,
        }
        if self.diff is not None:
            out["changes"] = [c.as_json() for c in self.diff.changes]
        if self.note:
            out["note"] = self.note
        return out


def check_snapshot(store: Store | None, run: RunManifest, role: str, path: str) -> LocalCheck:
    """Is the snapshot at ``path`` (any container) the one the run recorded as ``role``?"""
    from casstore.format import tree
    from casstore.format.digest import hash_bytes
    from casstore.trees.ingest import build, hash_member

    record, _, _ = build(path, hash_member)
    recorded = run.snapshot(role)
    check = LocalCheck(f"{role}_snapshot", path, recorded.digest if recorded else None, "")
    check.actual = hash_bytes(record)
    if check.ok or recorded is None:
        if recorded is None:
            check.note = f"the run recorded no {role} snapshot"
        return check
    if store is None:
        check.note = "no store to show what differs"
        return check
    try:
        stored = load(store, recorded.digest)
    except (ObjectNotFound, IntegrityError, ArchiveError) as exc:
        check.note = f"cannot show what differs: {exc}"
        return check
    check.diff = diff_entries(stored, tree.decode(record, path))
    return check


def check_file(run: RunManifest, role: str, path: str) -> LocalCheck:
    """Is the file at ``path`` the one the run recorded as ``role`` (``trajectory``...)?"""
    from casstore.format.digest import hash_file

    recorded = run.roles().get(role)
    check = LocalCheck(role, path, recorded.digest if recorded else None, hash_file(path)[0])
    if recorded is None:
        check.note = f"the run recorded no {role}"
    return check
