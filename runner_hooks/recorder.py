"""Record a run from inside the runner: its parameters, inputs and outputs, by digest.

A thin layer over :class:`casstore.Recording`. What a runner cannot see (the
final snapshot an orchestrator takes after it exits) is added by the
orchestrator: ``cas record --base <this run's sidecar> --snapshot final=...``.
"""

from __future__ import annotations

import inspect
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import casstore
from casstore import Ref, RunManifest, Store

Source = str | os.PathLike[str]

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
#: Flags of archipelago's runner that name input files, recorded as named configs.
_CONFIG_FLAGS = (
    "orchestrator_extra_args",
    "custom_args",
    "task_custom_fields",
    "inner_agent_config",
)


class RunRecorder:
    """Records one run into a store; usable as a context manager.

    >>> with RunRecorder(trajectory_id="t1", orchestrator_model="m") as rec:  # doctest: +SKIP
    ...     rec.attach_snapshot("initial", "env.tar.gz")
    ...     run_the_agent()
    ...     rec.attach_snapshot("final", "env-after.tar.gz")
    ...     digest = rec.finish("trajectory.json")

    Configs and initial messages may be given as JSON values, JSON strings or
    paths to JSON files; secrets in them are redacted before anything is hashed
    (:class:`casstore.Redactor`). ``store`` is a Store, a URL, or None for
    ``$CAS_STORE`` / ``store.toml``. Best effort unless ``strict``: when the store
    fails, the run goes to the local spool (``cas push --spool``). ``env`` names
    environment variables to record, beside ``[record] env`` of store.toml.
    ``code_root`` is the checkout of the runner's code (default: the folder of
    the module that creates the recorder, not the current folder). ``argv`` is
    the runner's command line (default: this process's), for ``cas replay``.
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
        env: Sequence[str] = (),
        code_root: Source | None = None,
        argv: Sequence[str] | None = None,
        configs: Mapping[str, Any] | None = None,
        runner: str | None = None,
    ) -> None:
        self._recording = casstore.Recording(
            store=store,
            strict=strict,
            env=env,
            code_root=code_root if code_root is not None else _caller_folder(),
            argv=argv if argv is not None else casstore.current_argv(),
            record_host=record_host,
        )
        self.digest: str | None = None
        #: The ref that keeps the run (``runs/<trajectory id>``), once finished.
        self.ref: str | None = None
        self.manifest: RunManifest | None = None
        #: True when the store was unreachable and the run went to the local spool.
        self.spooled = False
        self._recording.params.update(
            runner=runner if runner is not None else _runner(),
            trajectory_id=trajectory_id,
            agent_config_id=agent_config_id or "",
            agent_config_values=dict(agent_config_values or {}),
            orchestrator_model=orchestrator_model,
            orchestrator_extra_args=dict(orchestrator_extra_args or {}),
            seed=seed,
            deterministic=deterministic,
        )
        if agent_config is not None:
            self._recording.set_agent_config(agent_config)
        for role, value in (
            ("orchestrator_config", orchestrator_config),
            ("initial_messages", initial_messages),
        ):
            if value is not None:
                self._recording.set_json(role, value)
        for name, value in (configs or {}).items():
            self._recording.add_config(name, value)

    @classmethod
    def from_args(
        cls, args: Any, orchestrator_extra_args: Mapping[str, Any] | None = None, **params: Any
    ) -> RunRecorder:
        """A recorder for a runner's parsed flags.

        Reads ``--cas-store``, ``--seed`` and ``--deterministic`` (see
        ``add_reproducibility_args``) and, when the parser has them, archipelago's
        ``--trajectory-id``, ``--orchestrator-model``, ``--agent-config``,
        ``--initial-messages``, and the file-valued ``--orchestrator-extra-args``,
        ``--custom-args``, ``--task-custom-fields`` and ``--inner-agent-config``
        (recorded as named configs, so a replay passes them as files again).
        ``params`` override any of them; pass the extra args as returned by
        ``apply_determinism``.
        """
        for name, flag in _FROM_ARGS.items():
            if hasattr(args, flag):
                params.setdefault(name, getattr(args, flag))
        configs = dict(params.pop("configs", None) or {})
        for flag in _CONFIG_FLAGS:
            value = getattr(args, flag, None)
            if isinstance(value, str) and os.path.isfile(value):
                configs.setdefault(flag, value)
        params["orchestrator_extra_args"] = orchestrator_extra_args
        params.setdefault("code_root", _caller_folder())
        return cls(configs=configs, **params)

    # -- during the run -------------------------------------------------------

    def attach_snapshot(self, role: str, source: Source) -> Ref | None:
        """Store a snapshot (folder, zip, tar, tar.gz, tar.zst) as a tree under ``role``."""
        return self._recording.add_snapshot(role, source)

    def attach_mcp_config(self, config: Any) -> None:
        """The MCP config (a mapping, JSON string or JSON file); ``None``: the run had none."""
        self._recording.set_json("mcp_config", config)

    def attach_config(self, name: str, config: Any) -> None:
        """Any other input that moves a score, by name: the effective agent config after
        the runner's defaults (``"agent_effective"``), custom args, task fields..."""
        self._recording.add_config(name, config)

    def attach_artifact(self, name: str, path: Source) -> Ref | None:
        """Store any other file of the run under ``name``."""
        return self._recording.add_artifact(name, path)

    # -- at the end -----------------------------------------------------------

    def finish(self, trajectory_path: Source) -> str:
        """Store the inputs (redacted), the trajectory and the manifest; write the sidecar;
        claim the run's ref; return the manifest's digest."""
        recorded = self._recording.finish(trajectory_path)
        self.digest, self.ref, self.manifest = recorded.digest, recorded.ref, recorded.manifest
        self.spooled = recorded.spooled
        return recorded.digest

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None and self.digest is None:
            warnings.warn(
                "casstore: the run ended without RunRecorder.finish(); no manifest recorded",
                casstore.RecordingWarning,
                stacklevel=2,
            )


def _runner() -> str:
    """The runner program as invoked, relative to the current folder when inside it."""
    program = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else ""
    if program and os.path.isabs(program):
        relative = os.path.relpath(program)
        program = program if relative.startswith("..") else relative
    return program.replace(os.sep, "/")


def _caller_folder() -> Path | None:
    """Where the runner's code lives: the folder its first module outside runner_hooks on
    the stack is imported from (``agents`` for ``agents/runner/main.py`` run as
    ``python -m runner.main``), or that module's folder when run as a script."""
    here = os.path.dirname(os.path.abspath(__file__))
    for frame in inspect.stack()[1:]:
        name = frame.filename
        if name.startswith("<") or os.path.dirname(os.path.abspath(name)) == here:
            continue
        path = Path(name).resolve()
        spec = frame.frame.f_globals.get("__spec__")
        module = getattr(spec, "name", "") or ""
        levels = module.count(".") + (path.name == "__init__.py")
        if module and levels < len(path.parents):
            return path.parents[levels]
        return path.parent
    return None
