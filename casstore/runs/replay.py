"""Replay a run from its manifest: fetch and verify every input into a folder, and
say how to run it again (``cas replay``)."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casstore.fileio import atomic_write
from casstore.format.manifest import RunManifest
from casstore.runs.redaction import redacted_paths

if TYPE_CHECKING:
    from casstore.store.objects import Store

#: Input role -> file written in the replay folder (the stored bytes, verbatim).
JSON_FILES = {
    "agent_config": "agent_config.json",
    "orchestrator_config": "orchestrator_config.json",
    "initial_messages": "initial_messages.json",
    "mcp_config": "mcp_config.json",
}
PLAN_FILE = "replay.json"


@dataclass
class ReplayPlan:
    digest: str
    folder: Path
    #: Role -> path written (snapshots as a folder and as a zip).
    files: dict[str, str] = field(default_factory=dict)
    #: Redacted values a replay must supply, as ``role: dotted.path``.
    variables: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "manifest": self.digest,
            "folder": str(self.folder),
            "files": self.files,
            "variables_to_supply": self.variables,
            "command": self.command,
            "command_line": shlex.join(self.command),
            "warnings": self.warnings,
        }


def replay(
    store: Store,
    digest: str,
    run: RunManifest,
    into: str | os.PathLike[str],
    *,
    force: bool = False,
) -> ReplayPlan:
    """Materialise the inputs of ``run`` (stored as ``digest``) in ``into``, verified."""
    from casstore.errors import DestinationError

    folder = Path(into)
    if folder.exists() and any(folder.iterdir()) and not force:
        raise DestinationError(f"{folder} is not empty (use --force to write into it)")
    folder.mkdir(parents=True, exist_ok=True)
    plan = ReplayPlan(digest, folder)
    if run.initial_snapshot is not None:
        tree = run.initial_snapshot.digest
        store.get_tree(tree, folder / "initial", format="dir", force=force)
        store.get_tree(tree, folder / "initial.zip", force=force)
        plan.files["initial_snapshot"] = str(folder / "initial")
        plan.files["initial_snapshot.zip"] = str(folder / "initial.zip")
    for role, name in JSON_FILES.items():
        ref = getattr(run, role)
        if ref is None:
            continue
        target = folder / name
        store.get_file(ref.digest, target)
        plan.files[role] = str(target)
        try:
            content = json.loads(target.read_bytes())
        except ValueError:
            continue
        plan.variables += [f"{role}: {path}" for path in redacted_paths(content)]
    plan.variables += [
        f"parameters: {path}"
        for path in redacted_paths(run.orchestrator_extra_args, "orchestrator_extra_args")
    ]
    plan.command = command_line(run, plan)
    plan.warnings = provenance_warnings(run)
    with atomic_write(folder / PLAN_FILE, durable=False) as f:
        f.write((json.dumps(plan.as_json(), indent=2) + "\n").encode())
    return plan


def command_line(run: RunManifest, plan: ReplayPlan) -> list[str]:
    """The runner command that re-runs ``run`` on the replay folder's inputs."""
    runner = run.runner or "RUNNER"
    command = ["python", runner] if runner.endswith(".py") else [runner]
    flags: list[tuple[str, str | None]] = [
        ("--trajectory-id", f"{run.trajectory_id}-replay" if run.trajectory_id else None),
        ("--initial-messages", plan.files.get("initial_messages")),
        ("--agent-config", plan.files.get("agent_config")),
        ("--orchestrator-model", run.orchestrator_model or None),
        ("--orchestrator-extra-args", json.dumps(run.orchestrator_extra_args, sort_keys=True)),
        ("--mcp-config", plan.files.get("mcp_config")),
        ("--initial-snapshot", plan.files.get("initial_snapshot.zip")),
        ("--output", str(plan.folder / "trajectory.json")),
        ("--seed", None if run.seed is None else str(run.seed)),
    ]
    for flag, value in flags:
        if value is not None:
            command += [flag, value]
    if run.deterministic:
        command.append("--deterministic")
    return command


def provenance_warnings(run: RunManifest, folder: str = ".") -> list[str]:
    """Where the code here differs from the code that produced the run."""
    from casstore.format.digest import hash_file
    from casstore.runs.provenance import code_provenance

    here, lock = code_provenance(folder)
    recorded = run.code
    out = []
    if recorded.git_sha and here.git_sha != recorded.git_sha:
        now = here.git_sha or "not a git checkout"
        out.append(f"this checkout is {now}; the run was made at git {recorded.git_sha}")
    elif recorded.git_dirty:
        out.append("the run was made from a checkout with uncommitted changes")
    if recorded.casstore_version and recorded.casstore_version != here.casstore_version:
        out.append(
            f"casstore is {here.casstore_version} here; the run used {recorded.casstore_version}"
        )
    if recorded.lock_file is not None:
        current = hash_file(lock)[0] if lock is not None else None
        if current != recorded.lock_file.digest:
            what = f"{here.lock_file_name} is {current}" if current else "no lock file here"
            out.append(
                f"dependencies differ: {what}; the run's {recorded.lock_file_name} "
                f"was {recorded.lock_file.digest}"
            )
    return out
