"""Recording a run: everything that produced it and everything it produced, by digest.

One :class:`Recording` serves a runner's in-process recorder
(``runner_hooks.RunRecorder``), :func:`casstore.record_run`, and ``cas record``
for orchestrators in any language. Inputs are gathered during the run and
redacted together at :meth:`Recording.finish`, so a secret found in one (the
MCP config) is redacted in all (a message that quotes it); outputs (the
trajectory, artifacts) are stored as they are, and a warning names any
recorded secret they contain.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from casstore.errors import CasError
from casstore.format.digest import hash_bytes
from casstore.format.manifest import (
    RUNNER_MANIFEST,
    Invocation,
    Ref,
    RunManifest,
    encode,
    utc_timestamp,
)
from casstore.runs.redaction import Redactor, canonical_json
from casstore.runs.sink import Sink, Source, load_json, warn
from casstore.runs.spool import SPOOLED_SUFFIX
from casstore.store.objects import Store

MANIFEST_SUFFIX = ".manifest.json"
#: Inputs held as canonical JSON in the manifest's own fields.
JSON_ROLES = ("agent_config", "orchestrator_config", "initial_messages", "mcp_config")


def sidecar_path(trajectory: Source) -> Path:
    """Where a run's manifest is written: ``trajectory.json`` -> ``trajectory.manifest.json``."""
    path = Path(trajectory)
    return path.with_name(path.stem + MANIFEST_SUFFIX)


@dataclass(frozen=True)
class Recorded:
    digest: str
    manifest: RunManifest
    #: The ref that keeps the run (``runs/<trajectory id>``); None when nothing was stored.
    ref: str | None
    sidecar: Path | None
    #: True when the store was unreachable and the run went to the local spool.
    spooled: bool


class Recording:
    """A run being recorded. Attach what it uses and makes, then :meth:`finish`."""

    def __init__(
        self,
        *,
        store: str | Store | None = None,
        strict: bool = False,
        spool: Source | None = None,
        params: Mapping[str, Any] | None = None,
        env: Sequence[str] = (),
        code_root: Source | None = None,
        argv: Sequence[str] | None = None,
        cwd: Source | None = None,
        record_host: bool = False,
    ) -> None:
        self.sink = Sink(store, strict=strict, spool=spool)
        self._base: RunManifest | None = None
        #: The digest of the base manifest, whose ref the completed run takes over.
        self._supersedes: str | None = None
        #: Run parameters (manifest fields), by name.
        self.params: dict[str, Any] = dict(params or {})
        #: JSON inputs by role (``agent_config``, ``config:custom_args``...), not yet redacted.
        self._json: dict[str, Any] = {}
        #: Real paths of input files -> their roles, to map a runner's arguments.
        self._paths: dict[str, str] = {}
        self._refs: dict[str, Ref | None] = {}
        self._snapshots: dict[str, Ref] = {}
        self._artifacts: dict[str, Ref] = {}
        self._outputs: list[tuple[str, Path]] = []
        self._env = list(dict.fromkeys([*_configured_env(), *env]))
        self._code_root = Path(code_root) if code_root is not None else None
        self._argv = list(argv) if argv is not None else None
        self._cwd = Path(cwd) if cwd is not None else None
        self._record_host = record_host

    # -- inputs ---------------------------------------------------------------

    def complete(self, data: bytes) -> None:
        """Complete the run whose manifest is ``data`` (a runner's own, recorded in another
        process): its fields are kept unless given here, it is kept in the new run's
        closure as ``artifact:runner_manifest``, and its ref moves to the new run."""
        from casstore.format.manifest import decode_as

        self._base = decode_as(RunManifest, data)
        self._snapshots = {**self._base.snapshots, **self._snapshots}
        self._artifacts = {**self._base.artifacts, **self._artifacts}
        ref = self.sink.put_bytes("runner manifest", data)
        if ref is not None:
            self._artifacts[RUNNER_MANIFEST] = ref
            self._supersedes = ref.digest

    def _remember(self, source: Any, role: str) -> None:
        if isinstance(source, str | os.PathLike) and os.path.exists(source):
            self._paths[os.path.realpath(source)] = role

    def set_json(self, role: str, value: Any) -> None:
        """A JSON input (a value, a JSON string, or a file); ``None`` records none."""
        if value is None:
            self._json.pop(role, None)
            self._refs[role] = None
            return
        try:
            loaded = load_json(value)
        except (OSError, ValueError) as exc:
            self.sink.skip(role.replace("_", " "), exc)
            return
        self._remember(value, role)
        self._json[role] = loaded

    def set_agent_config(self, value: Any) -> None:
        """The agent config; archipelago's shape (``agent_config_id``,
        ``agent_config_values``) also fills those parameters, unless given."""
        self.set_json("agent_config", value)
        config = self._json.get("agent_config")
        if isinstance(config, Mapping):
            if not self.params.get("agent_config_id"):
                self.params["agent_config_id"] = str(config.get("agent_config_id", "") or "")
            values = config.get("agent_config_values")
            if not self.params.get("agent_config_values") and isinstance(values, Mapping):
                self.params["agent_config_values"] = dict(values)

    def add_config(self, name: str, value: Any) -> None:
        """A named input (custom args, task fields, the effective agent config...)."""
        if not name or not isinstance(name, str):
            raise ValueError("a config is named: a non-empty string")
        self.set_json(f"config:{name}", value)

    def add_snapshot(self, role: str, source: Source) -> Ref | None:
        """A snapshot (folder, zip, tar, tar.gz, tar.zst), stored as a tree now."""
        if not role or not isinstance(role, str):
            raise ValueError("a snapshot role is a non-empty string ('initial', 'final'...)")
        ref = self.sink.put_tree(f"{role} snapshot", source)
        if ref is not None:
            self._snapshots[role] = ref
            self._remember(source, f"{role}_snapshot")
        return ref

    def add_artifact(self, name: str, path: Source) -> Ref | None:
        """Any other file of the run, stored as it is."""
        ref = self.sink.put_file(f"artifact {name}", path)
        if ref is not None:
            self._artifacts[name] = ref
            self._remember(path, f"artifact:{name}")
            self._outputs.append((f"artifact {name}", Path(path)))
        return ref

    def link_artifact(self, name: str, ref: Ref) -> None:
        """An artifact stored already (the runner's own manifest, for one)."""
        self._artifacts[name] = ref

    # -- the end ----------------------------------------------------------------

    def finish(
        self, trajectory: Source, *, sidecar: bool = True, ref: str | None = None
    ) -> Recorded:
        """Redact and store the inputs, store the trajectory and the manifest, write the
        sidecar, and claim a ref for the run."""
        redactor = Redactor()
        names = list(self._json)
        params: dict[str, Any] = {
            key: self.params[key]
            for key in ("agent_config_values", "orchestrator_extra_args")
            if key in self.params
        }
        inputs: dict[str, Any] = {n: self._json[n] for n in names}
        inputs.update(params)
        inputs["environment"] = {n: os.environ[n] for n in self._env if n in os.environ}
        redacted = redactor.redact_all(inputs)
        refs = dict(self._refs)
        for name in names:
            data = canonical_json(redacted[name])
            refs[name] = self.sink.put_bytes(name.replace("_", " "), data)
        fields: dict[str, Any] = {**self.params, **{k: redacted[k] for k in params}}
        self._remember(trajectory, "trajectory")
        trajectory_ref = self.sink.put_file("trajectory", trajectory)
        self._check_outputs(redactor, [("trajectory", Path(trajectory)), *self._outputs])
        base = msgspec.to_builtins(self._base) if self._base is not None else {}
        base.pop("casstore", None)
        for field in ("schema_version", "created_at"):
            base.pop(field, None)
        document = msgspec.to_builtins(
            {
                **base,
                **{k: v for k, v in fields.items() if v is not None or k == "seed"},
                "created_at": utc_timestamp(),
                # A completed run keeps its runner's code unless told where the code is.
                "code": base["code"] if base and self._code_root is None else self._code(),
                **{role: refs[role] for role in JSON_ROLES if role in refs},
                "initial_snapshot": self._snapshots.pop("initial", None)
                or base.get("initial_snapshot"),
                "final_snapshot": self._snapshots.pop("final", None) or base.get("final_snapshot"),
                "snapshots": self._snapshots,
                "artifacts": self._artifacts,
                "trajectory": trajectory_ref,
                "configs": {
                    **(base.get("configs") or {}),
                    **{n[7:]: r for n, r in refs.items() if n.startswith("config:") and r},
                },
                "environment": {**(base.get("environment") or {}), **redacted["environment"]},
                "packages": self._packages(),
                "invocation": self._invocation(redactor) or base.get("invocation"),
                "host": self._host(),
            }
        )
        manifest = msgspec.convert(document, RunManifest)
        data = encode(manifest)
        stored = self.sink.put_bytes("run manifest", data)
        digest = stored.digest if stored is not None else hash_bytes(data)
        path = sidecar_path(trajectory) if sidecar else None
        if path is not None:
            self._write_sidecar(path, data)
        claimed = None
        if stored is not None:
            # The run is a root: gc keeps it, and everything it references.
            name = ref or manifest.trajectory_id or "run"
            claimed = self.sink.claim_ref("runs", name, digest, supersedes=self._supersedes)
            if self.sink.spooled and self.sink.store is not None:
                from casstore.runs.spool import add_pending

                add_pending(self.sink.store, digest, claimed, self.sink.target, path)
        return Recorded(digest, manifest, claimed, path, self.sink.spooled)

    def _check_outputs(self, redactor: Redactor, outputs: list[tuple[str, Path]]) -> None:
        """Outputs are stored as they are; one that holds a recorded secret is named."""
        if not redactor.secrets:
            return
        for what, path in outputs:
            try:
                leaked = redactor.scan(_chunks(path))
            except OSError:
                continue
            if leaked:
                message = (
                    f"casstore: the {what} ({path}) contains a secret redacted from the "
                    f"inputs ({', '.join(sorted(leaked))}); it is stored as it is"
                )
                if self.sink.strict:
                    raise CasError(message)
                warn(message)

    def _write_sidecar(self, path: Path, data: bytes) -> None:
        from casstore.fileio import atomic_write

        try:
            with atomic_write(path, durable=False) as f:
                f.write(data)
            if self.sink.spooled and self.sink.store is not None:
                note = path.with_name(path.name + SPOOLED_SUFFIX)
                with atomic_write(note, durable=False) as f:
                    f.write(
                        f"this run is in the spool {self.sink.store.url}, not yet in its store "
                        f"{self.sink.target or '(none configured)'}: cas push --spool\n".encode()
                    )
        except OSError as exc:
            self.sink.skip("manifest sidecar", exc)

    def _code(self) -> Any:
        from casstore.runs.provenance import code_provenance

        code, lock = code_provenance(self._code_root or Path.cwd())
        if lock is not None:
            code = msgspec.structs.replace(code, lock_file=self.sink.put_file("lock file", lock))
        return code

    def _packages(self) -> Ref | None:
        from casstore.runs.packages import installed

        return self.sink.put_bytes("installed packages", canonical_json(installed()))

    def _invocation(self, redactor: Redactor) -> Invocation | None:
        if self._argv is None:
            return None
        from casstore.runs.invocation import capture
        from casstore.runs.provenance import git_state

        root = git_state(self._code_root or Path.cwd())[2] or self._code_root
        invocation = capture(
            self._argv, inputs=self._paths, code_root=root, redactor=redactor, cwd=self._cwd
        )
        known = self._base.invocation if self._base is not None else None
        if known is None:
            return invocation
        # The runner recorded which of its arguments were input files; the same
        # argument here is the same input.
        files = {
            index: role
            for index, role in known.files.items()
            if int(index) < min(len(known.args), len(invocation.args))
            and known.args[int(index)] == invocation.args[int(index)]
        }
        return msgspec.structs.replace(invocation, files={**files, **invocation.files})

    def _host(self) -> Any:
        if not self._record_host:
            return self._base.host if self._base is not None else None
        from casstore.runs.provenance import host_provenance

        return host_provenance()


def _configured_env() -> list[str]:
    """The environment variables ``[record] env`` of store.toml lists."""
    from casstore.config import load_config

    try:
        return list(load_config().file.record.env)
    except CasError:
        return []


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while piece := f.read(1 << 20):
            yield piece


def record_run(
    trajectory: Source,
    *,
    store: str | Store | None = None,
    snapshots: Mapping[str, Source] | None = None,
    mcp_config: Any = None,
    agent_config: Any = None,
    orchestrator_config: Any = None,
    initial_messages: Any = None,
    configs: Mapping[str, Any] | None = None,
    artifacts: Mapping[str, Source] | None = None,
    params: Mapping[str, Any] | None = None,
    env: Sequence[str] = (),
    runner_argv: Sequence[str] | None = None,
    runner_cwd: Source | None = None,
    base: Source | None = None,
    ref: str | None = None,
    code_root: Source | None = None,
    strict: bool = False,
    sidecar: bool = True,
) -> Recorded:
    """Record a whole run from files and parameters (``cas record``): for orchestrators
    that hold what a runner never sees (both snapshots, the MCP config).

    ``params`` are manifest fields (``trajectory_id``, ``orchestrator_model``,
    ``seed``, ``deterministic``, ``orchestrator_extra_args``...); ``runner_argv``
    is the runner's command line, for replay (``runner_cwd`` the folder it ran in,
    default the current one); ``base`` the run to complete (the
    runner's own manifest: its sidecar, or its digest or ref in the store): what is
    given here is added to it or replaces it (:meth:`Recording.complete`).
    """
    recording = Recording(
        store=store,
        strict=strict,
        params=params,
        env=env,
        code_root=code_root if code_root is not None else runner_cwd,
        argv=runner_argv,
        cwd=runner_cwd,
    )
    if base is not None:
        from casstore.runs.records import read_record_bytes

        recording.complete(read_record_bytes(os.fspath(base), recording.sink.store)[1])
    if agent_config is not None:
        recording.set_agent_config(agent_config)
    for role, value in (
        ("orchestrator_config", orchestrator_config),
        ("initial_messages", initial_messages),
        ("mcp_config", mcp_config),
    ):
        if value is not None:
            recording.set_json(role, value)
    for name, value in (configs or {}).items():
        recording.add_config(name, value)
    for role, source in (snapshots or {}).items():
        recording.add_snapshot(role, source)
    for name, path in (artifacts or {}).items():
        recording.add_artifact(name, path)
    return recording.finish(trajectory, sidecar=sidecar, ref=ref)
