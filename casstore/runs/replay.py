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
from casstore.runs.redaction import MARKER, redacted_paths

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
    #: Values a replay must supply: redacted ones (``role: dotted.path``) and the
    #: placeholders of the command (``MCP_GATEWAY_URL``).
    variables: list[str] = field(default_factory=list)
    command_line: str = ""
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "manifest": self.digest,
            "folder": str(self.folder),
            "files": self.files,
            "variables_to_supply": self.variables,
            "command_line": self.command_line,
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
    """Materialise the inputs of ``run`` (stored as ``digest``) in ``into``, verified, and
    say how to run it again: the recorded runner command, on those inputs."""
    from casstore.errors import DestinationError

    folder = Path(into).absolute()
    if folder.exists() and any(folder.iterdir()) and not force:
        raise DestinationError(f"{folder} is not empty (use --force to write into it)")
    folder.mkdir(parents=True, exist_ok=True)
    plan = ReplayPlan(digest, folder)
    paths: dict[str, str] = {"trajectory": str(folder / "output" / "trajectory.json")}
    (folder / "output").mkdir(exist_ok=True)
    recorded_as = _recorded_paths(run)
    for role, ref in _snapshots(run).items():
        target = folder / role.removesuffix("_snapshot")
        store.get_tree(ref.digest, target, format="dir", force=force)
        plan.files[role] = paths[role] = str(target)
        suffix = _archive_suffix(recorded_as.get(role, ""))
        if role == "initial_snapshot" or suffix:
            archive = target.with_name(target.name + (suffix or ".zip"))
            store.get_tree(ref.digest, archive, force=force)
            plan.files[f"{role}{suffix or '.zip'}"] = str(archive)
            if suffix:
                paths[role] = str(archive)
    for role, target in _json_inputs(run, folder).items():
        ref = run.roles()[role]
        target.parent.mkdir(parents=True, exist_ok=True)
        store.get_file(ref.digest, target)
        plan.files[role] = paths[role] = str(target)
        try:
            content = json.loads(target.read_bytes())
        except (ValueError, RecursionError):
            continue
        plan.variables += [f"{role}: {path}" for path in redacted_paths(content)]
    plan.variables += [
        f"parameters: {path}"
        for path in redacted_paths(run.orchestrator_extra_args, "orchestrator_extra_args")
    ]
    if run.invocation is not None:
        from casstore.runs.invocation import command
        from casstore.runs.provenance import git_state

        root = git_state(".")[2]
        plan.command_line = command(
            run.invocation, paths, str(root) if root else None, run.environment
        )
        plan.variables += [
            f"${name} (environment, redacted when recorded)"
            for name, value in sorted(run.environment.items())
            if MARKER in value
        ]
        recorded = run.invocation.args
        for index, name in sorted(run.invocation.placeholders.items(), key=lambda i: int(i[0])):
            was = recorded[int(index)]
            plan.variables.append(f"${name} (recorded: {was})")
        if root is None and "${CODE_ROOT}" in plan.command_line:
            plan.variables.append(
                "$CODE_ROOT (the checkout of the runner's code; outside git, the folder its "
                "modules are imported from)"
            )
    else:
        plan.command_line = shlex.join(command_line(run, plan))
    plan.warnings = provenance_warnings(run)
    with atomic_write(folder / PLAN_FILE, durable=False) as f:
        f.write((json.dumps(plan.as_json(), indent=2) + "\n").encode())
    return plan


def _snapshots(run: RunManifest) -> dict[str, Any]:
    """The input snapshots (the final one is what the run made, not what it used)."""
    return {
        role: ref
        for role, ref in run.roles().items()
        if role.endswith("_snapshot") and role != "final_snapshot"
    }


def _recorded_paths(run: RunManifest) -> dict[str, str]:
    """Role -> the path the runner was given for it, from the recorded invocation."""
    if run.invocation is None:
        return {}
    args = run.invocation.args
    return {
        role: args[int(index)].rpartition("=")[2] for index, role in run.invocation.files.items()
    }


def _archive_suffix(path: str) -> str:
    for suffix in (".tar.gz", ".tgz", ".tar.zst", ".tar", ".zip"):
        if path.lower().endswith(suffix):
            return suffix
    return ""


def _json_inputs(run: RunManifest, folder: Path) -> dict[str, Path]:
    """Role -> where each JSON input is written: the stored bytes, verbatim."""
    out = {role: folder / name for role, name in JSON_FILES.items() if getattr(run, role)}
    out.update({f"config:{name}": folder / "configs" / f"{name}.json" for name in run.configs})
    return out


def command_line(run: RunManifest, plan: ReplayPlan) -> list[str]:
    """For a run recorded without its invocation (schema 1.0): the command of casstore's
    example runner, on the replay folder's inputs."""
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
