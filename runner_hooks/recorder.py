"""Record a run: its parameters, inputs and outputs, by digest, in a run manifest."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

import casstore
from casstore import Ref, RunManifest, Store
from runner_hooks.sink import RecordingWarning, Sink, Source, write_sidecar

MANIFEST_SUFFIX = ".manifest.json"


def sidecar_path(trajectory: Source) -> Path:
    """Where the manifest of a run is written: ``trajectory.json`` ->
    ``trajectory.manifest.json``."""
    path = Path(trajectory)
    return path.with_name(path.stem + MANIFEST_SUFFIX)


#: RunRecorder parameter -> attribute of a runner's parsed flags.
_FROM_ARGS = {
    "store": "cas_store",
    "seed": "seed",
    "deterministic": "deterministic",
    "trajectory_id": "trajectory_id",
    "orchestrator_model": "orchestrator_model",
    "agent_config": "agent_config",
    "initial_messages": "initial_messages",
}


class RunRecorder:
    """Records one run into a store; usable as a context manager.

    >>> with RunRecorder(trajectory_id="t1", orchestrator_model="m") as rec:  # doctest: +SKIP
    ...     rec.attach_snapshot("initial", "env.tar.gz")
    ...     run_the_agent()
    ...     rec.attach_snapshot("final", "env-after.tar.gz")
    ...     digest = rec.finish("trajectory.json")

    Configs and initial messages may be given as JSON values, JSON strings or
    paths to JSON files; secrets in them are redacted before anything is hashed.
    ``store`` is a Store, a URL, or None for ``$CAS_STORE`` / ``store.toml``.
    Best effort unless ``strict``: see :mod:`runner_hooks.sink`.
    """

    def __init__(
        self,
        *,
        store: str | Store | None = None,
        trajectory_id: str = "",
        agent_config: Any = None,
        agent_config_id: str | None = None,
        agent_config_values: Mapping[str, Any] | None = None,
        orchestrator_model: str = "",
        orchestrator_extra_args: Mapping[str, Any] | None = None,
        orchestrator_config: Any = None,
        initial_messages: Any = None,
        seed: int | None = None,
        deterministic: bool = False,
        strict: bool = False,
        record_host: bool = False,
        code_dir: Source = ".",
        runner: str | None = None,
    ) -> None:
        self._sink = Sink(store, strict=strict)
        self._fields: dict[str, Any] = {}
        self._snapshots: dict[str, Ref] = {}
        self._artifacts: dict[str, Ref] = {}
        self.digest: str | None = None
        #: The ref that keeps the run (``runs/<trajectory id>``), once finished.
        self.ref: str | None = None
        self.manifest: RunManifest | None = None

        config = self._sink.load("agent config", agent_config)
        if isinstance(config, Mapping):
            # archipelago's AgentConfig shape: {"agent_config_id", "agent_config_values"}
            agent_config_id = agent_config_id or str(config.get("agent_config_id", "") or "")
            if agent_config_values is None and isinstance(
                config.get("agent_config_values"), Mapping
            ):
                agent_config_values = config["agent_config_values"]
        self._fields.update(
            runner=runner if runner is not None else _runner(),
            trajectory_id=trajectory_id,
            agent_config_id=agent_config_id or "",
            agent_config_values=casstore.redact(dict(agent_config_values or {})),
            orchestrator_model=orchestrator_model,
            orchestrator_extra_args=casstore.redact(dict(orchestrator_extra_args or {})),
            seed=seed,
            deterministic=deterministic,
            agent_config=self._sink.put_json("agent config", config)
            if config is not None
            else None,
            orchestrator_config=self._put_json("orchestrator config", orchestrator_config),
            initial_messages=self._put_json("initial messages", initial_messages),
        )
        code, lock = casstore.code_provenance(code_dir)
        if lock is not None:
            code = msgspec.structs.replace(code, lock_file=self._sink.put_file("lock file", lock))
        self._fields["code"] = code
        if record_host:
            self._fields["host"] = casstore.host_provenance()

    @classmethod
    def from_args(
        cls, args: Any, orchestrator_extra_args: Mapping[str, Any] | None = None, **params: Any
    ) -> RunRecorder:
        """A recorder for a runner's parsed flags.

        Reads ``--cas-store``, ``--seed`` and ``--deterministic`` (see
        ``add_reproducibility_args``) and, when the parser has them, archipelago's
        ``--trajectory-id``, ``--orchestrator-model``, ``--agent-config`` and
        ``--initial-messages`` (JSON strings or files). ``params`` override any of them;
        pass the extra args as returned by ``apply_determinism``.
        """
        for name, flag in _FROM_ARGS.items():
            if hasattr(args, flag):
                params.setdefault(name, getattr(args, flag))
        params["orchestrator_extra_args"] = orchestrator_extra_args
        return cls(**params)

    def _put_json(self, what: str, value: Any, *, mcp: bool = False) -> Ref | None:
        return self._sink.put_json(what, self._sink.load(what, value), mcp=mcp)

    # -- during the run -------------------------------------------------------

    def attach_snapshot(self, role: str, source: Source) -> Ref | None:
        """Store a snapshot (folder, zip, tar, tar.gz, tar.zst) as a tree under ``role``."""
        if not role or not isinstance(role, str):
            raise ValueError("a snapshot role is a non-empty string ('initial', 'final'...)")
        ref = self._sink.put_tree(f"{role} snapshot", source)
        if ref is not None:
            self._snapshots[role] = ref
        return ref

    def attach_mcp_config(self, config: Any) -> Ref | None:
        """Store the MCP config (a mapping, JSON string or JSON file), secrets redacted.

        ``None`` records that the run had no MCP config."""
        ref = self._put_json("MCP config", config, mcp=True)
        self._fields["mcp_config"] = ref
        return ref

    def attach_artifact(self, name: str, path: Source) -> Ref | None:
        """Store any other file of the run under ``name``."""
        ref = self._sink.put_file(f"artifact {name}", path)
        if ref is not None:
            self._artifacts[name] = ref
        return ref

    # -- at the end -----------------------------------------------------------

    def finish(self, trajectory_path: Source) -> str:
        """Store the trajectory and the manifest; write the sidecar; return its digest."""
        self._fields["trajectory"] = self._sink.put_file("trajectory", trajectory_path)
        snapshots = dict(self._snapshots)
        manifest = RunManifest(
            created_at=casstore.utc_timestamp(),
            initial_snapshot=snapshots.pop("initial", None),
            final_snapshot=snapshots.pop("final", None),
            snapshots=snapshots,
            artifacts=dict(self._artifacts),
            **self._fields,
        )
        data = casstore.encode_record(manifest)
        ref = self._sink.put_bytes("run manifest", data)
        digest = ref.digest if ref is not None else casstore.hash_bytes(data)
        if ref is not None:
            # The run is a root: gc keeps it, and everything it references, until the
            # ref is deleted.
            self.ref = self._sink.claim_ref("runs", manifest.trajectory_id or "run", digest)
        try:
            write_sidecar(sidecar_path(trajectory_path), data)
        except OSError as exc:
            self._sink.skip("manifest sidecar", exc)
        self.manifest, self.digest = manifest, digest
        return digest

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None and self.digest is None:
            warnings.warn(
                "casstore: the run ended without RunRecorder.finish(); no manifest recorded",
                RecordingWarning,
                stacklevel=2,
            )


def _runner() -> str:
    """The runner program as invoked, relative to the current folder when inside it."""
    program = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
    if program and os.path.isabs(program):
        relative = os.path.relpath(program)
        program = program if relative.startswith("..") else relative
    return program.replace(os.sep, "/")
