"""Why two runs differ: their manifests compared input by input.

Parameters, code provenance, the runner's invocation and environment settings
field by field; JSON inputs (agent and orchestrator configs, initial messages,
MCP config, named configs) key by key; installed packages package by package; snapshots
file by file (a tree diff); outputs by digest, and key by key when they are JSON
(a replay's trajectory often holds the same value written with keys in another order).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from casstore.errors import CasError
from casstore.format.manifest import (
    RUNNER_MANIFEST,
    GradingRecord,
    Invocation,
    Ref,
    RunManifest,
    decode_as,
)
from casstore.trees.diff import TreeDiff, diff_trees

if TYPE_CHECKING:
    from casstore.store.objects import Store


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


#: The value on the side where a field, key or input does not exist.
ABSENT: Any = _Absent()

PARAMETERS = (
    "trajectory_id",
    "orchestrator_model",
    "orchestrator_extra_args",
    "seed",
    "deterministic",
    "agent_config_id",
    "agent_config_values",
)
JSON_INPUTS = ("agent_config", "orchestrator_config", "initial_messages", "mcp_config")
GRADING_FIELDS = ("judge_model", "baseline_role", "score", "mismatched")
GRADING_JSON = ("grading_settings", "verifiers", "eval_configs", "scoring_config", "grades")
OUTPUTS = ("trajectory",)
#: JSON inputs larger than this are compared by digest only.
MAX_JSON_BYTES = 16 << 20


@dataclass(frozen=True)
class Difference:
    """One differing value. ``role`` is ``parameters``, ``code``, ``host`` or an input's
    name; ``path`` the field or key inside it (empty for the whole input)."""

    role: str
    path: str
    old: Any = ABSENT
    new: Any = ABSENT

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "path": self.path}
        if self.old is not ABSENT:
            out["old"] = self.old
        if self.new is not ABSENT:
            out["new"] = self.new
        return out


@dataclass
class ManifestDiff:
    differences: list[Difference] = field(default_factory=list)
    #: Snapshot role -> what changed file by file (only snapshots present on both sides).
    snapshots: dict[str, TreeDiff] = field(default_factory=dict)
    #: Input role -> why its content could not be compared (not in the store...).
    unavailable: dict[str, str] = field(default_factory=dict)
    #: Roles whose bytes differ while their JSON values are equal (key order, whitespace).
    same_value: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.differences or self.snapshots)

    def roles(self) -> list[str]:
        """Roles that differ, in manifest order."""
        seen = dict.fromkeys(d.role for d in self.differences)
        seen.update(dict.fromkeys(self.snapshots))
        return list(seen)


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, leaf) pairs of a JSON value: ``a.b``, ``messages[2].content``."""
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def diff_values(role: str, old: Any, new: Any, prefix: str = "") -> list[Difference]:
    """Key by key differences between two JSON values (paths start with ``prefix``)."""
    before, after = dict(flatten(old, prefix)), dict(flatten(new, prefix))
    out = []
    for path in sorted(before.keys() | after.keys()):
        a, b = before.get(path, ABSENT), after.get(path, ABSENT)
        if _emptied(path, a, b, after) or _emptied(path, b, a, before):
            continue  # {} on one side, its keys on the other: those keys are the news
        # 1 == 1.0 == True in Python; a changed type is a changed value here.
        if a != b or type(a) is not type(b):
            out.append(Difference(role, path, a, b))
    return out


def _emptied(path: str, value: Any, other: Any, other_side: dict[str, Any]) -> bool:
    """``value`` is an empty container that the other side fills (listed below it)."""
    if other is not ABSENT or value not in ({}, []):
        return False
    return any(
        not path or key.startswith((path + ".", path + "[")) for key in other_side if key != path
    )


def diff_manifests(store: Store | None, a: RunManifest, b: RunManifest) -> ManifestDiff:
    """What differs between runs ``a`` and ``b``; contents are read from ``store``."""
    result = ManifestDiff()
    for name in PARAMETERS:
        old, new = getattr(a, name), getattr(b, name)
        if isinstance(old, dict) and isinstance(new, dict):
            result.differences += diff_values("parameters", old, new, prefix=name)
        elif old != new or type(old) is not type(new):
            result.differences.append(Difference("parameters", name, old, new))
    code_a, code_b = msgspec.to_builtins(a.code), msgspec.to_builtins(b.code)
    result.differences += diff_values("code", code_a, code_b)
    if a.host is not None and b.host is not None:
        host_a, host_b = msgspec.to_builtins(a.host), msgspec.to_builtins(b.host)
        result.differences += diff_values("host", host_a, host_b)
    if a.invocation is not None or b.invocation is not None:
        inv_a, inv_b = invocation_as_compared(a.invocation), invocation_as_compared(b.invocation)
        result.differences += diff_values("invocation", inv_a, inv_b)
    result.differences += diff_values("environment", a.environment, b.environment)
    for name in JSON_INPUTS:
        _diff_json_input(store, result, name, getattr(a, name), getattr(b, name))
    for name in sorted(a.configs.keys() | b.configs.keys()):
        role = f"config:{name}"
        _diff_json_input(store, result, role, a.configs.get(name), b.configs.get(name))
    # Installed distributions, package by package (``numpy: "2.1.0" -> "2.1.3"``).
    _diff_json_input(store, result, "packages", a.packages, b.packages)
    roles = ["initial", "final", *sorted(a.snapshots.keys() | b.snapshots.keys())]
    for role in roles:
        _diff_snapshot(store, result, f"{role}_snapshot", a.snapshot(role), b.snapshot(role))
    for name in OUTPUTS:
        _diff_json_input(store, result, name, getattr(a, name), getattr(b, name))
    for name in sorted(a.artifacts.keys() | b.artifacts.keys()):
        if name == RUNNER_MANIFEST:
            continue  # merged into the run it completes, which is compared field by field
        _diff_ref(result, f"artifact:{name}", a.artifacts.get(name), b.artifacts.get(name))
    return result


def diff_gradings(
    store: Store | None, a: GradingRecord, b: GradingRecord
) -> tuple[ManifestDiff, ManifestDiff | None]:
    """What differs between two gradings (judge, settings, verifiers and configs key by
    key, grader code, grades verifier by verifier, the score), and between their runs
    when they graded different ones (None when the same run, or it cannot be read)."""
    result = ManifestDiff()
    for name in GRADING_FIELDS:
        old, new = getattr(a, name), getattr(b, name)
        if old != new or type(old) is not type(new):
            result.differences.append(Difference("grading", name, old, new))
    result.differences += diff_values(
        "grader code", msgspec.to_builtins(a.code), msgspec.to_builtins(b.code)
    )
    for name in GRADING_JSON:
        _diff_json_input(store, result, name, getattr(a, name), getattr(b, name))
    for role in sorted(a.graded_snapshots.keys() | b.graded_snapshots.keys()):
        name = f"graded:{role}"
        _diff_ref(result, name, a.graded_snapshots.get(role), b.graded_snapshots.get(role))
    if a.run.digest == b.run.digest or store is None:
        return result, None
    try:
        run_a = decode_as(RunManifest, store.get_record(a.run.digest), a.run.digest)
        run_b = decode_as(RunManifest, store.get_record(b.run.digest), b.run.digest)
    except CasError as exc:
        result.unavailable["run"] = str(exc)
        return result, None
    return result, diff_manifests(store, run_a, run_b)


def by_id(value: Any) -> Any:
    """A JSON value with each list of objects that all carry an id (``verifier_id``,
    ``id``) made a mapping by that id: grades compare verifier by verifier, not by
    position in a list."""
    if isinstance(value, dict):
        return {key: by_id(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [by_id(item) for item in value]
        for key in ("verifier_id", "id"):
            ids = [i.get(key) for i in items if isinstance(i, dict)]
            named = all(isinstance(i, str) for i in ids) and len(set(ids)) == len(ids)
            if items and len(ids) == len(items) and named:
                return {str(i[key]): i for i in items}
        return items
    return value


def invocation_as_compared(invocation: Invocation | None) -> Any:
    """An invocation as compared: input files by role (their contents are compared as
    inputs; where they lay is no difference), placeholders by name."""
    if invocation is None:
        return None
    args = list(invocation.args)
    for index, role in invocation.files.items():
        flag, eq, _ = args[int(index)].partition("=")
        args[int(index)] = f"{flag}=<{role}>" if eq and flag.startswith("-") else f"<{role}>"
    for index, name in invocation.placeholders.items():
        flag, eq, _ = args[int(index)].partition("=")
        args[int(index)] = f"{flag}=${{{name}}}" if eq and flag.startswith("-") else f"${{{name}}}"
    return {"program": invocation.program, "cwd": invocation.cwd, "args": args}


def _diff_ref(result: ManifestDiff, role: str, old: Ref | None, new: Ref | None) -> bool:
    """Record a whole-input difference; True when both sides exist and differ."""
    if old == new:
        return False
    if old is None or new is None:
        result.differences.append(
            Difference(role, "", old.digest if old else ABSENT, new.digest if new else ABSENT)
        )
        return False
    if old.digest == new.digest:
        return False
    result.differences.append(Difference(role, "", old.digest, new.digest))
    return True


def _diff_json_input(
    store: Store | None, result: ManifestDiff, role: str, old: Ref | None, new: Ref | None
) -> None:
    if not _diff_ref(result, role, old, new):
        return
    assert old is not None and new is not None
    if store is None:
        result.unavailable[role] = "no store to read the contents from"
        return
    if max(old.size, new.size) > MAX_JSON_BYTES:
        result.unavailable[role] = "too large to compare key by key"
        return
    try:
        before = msgspec.json.decode(store.get_bytes(old.digest))
        after = msgspec.json.decode(store.get_bytes(new.digest))
    except CasError as exc:
        result.unavailable[role] = str(exc)
        return
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        result.unavailable[role] = "not JSON"
        return
    if role == "grades":  # verifier by verifier, wherever each stands in the list
        before, after = by_id(before), by_id(after)
    found = diff_values(role, before, after)
    result.differences += found
    if not found:
        result.same_value.append(role)


def _diff_snapshot(
    store: Store | None, result: ManifestDiff, role: str, old: Ref | None, new: Ref | None
) -> None:
    if old is None or new is None or old.digest == new.digest:
        _diff_ref(result, role, old, new)
        return
    if store is None:
        _diff_ref(result, role, old, new)
        result.unavailable[role] = "no store to read the trees from"
        return
    try:
        result.snapshots[role] = diff_trees(store, old.digest, new.digest)
    except CasError as exc:
        _diff_ref(result, role, old, new)
        result.unavailable[role] = str(exc)
