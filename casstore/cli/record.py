"""``cas record``: record a run from files and parameters, for orchestrators in any
language (the same as :func:`casstore.record_run`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any

from casstore.cli.common import EXIT_OK, Adder, print_json
from casstore.errors import CasError, UsageError


def _pairs(specs: list[str], option: str, example: str) -> dict[str, str]:
    out = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"{option} takes {example}, not {spec!r}")
        out[name] = value
    return out


def _value(text: str) -> Any:
    """A parameter's value: JSON when it parses (7, 0.5, true, "x"), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _require_files(args: argparse.Namespace) -> None:
    """Every file named on the command line exists: best effort is for inputs that fail
    while a runner runs, not for a path mistyped here (which would record a run
    without it, under a ref, and exit 0)."""
    named = [args.trajectory, args.mcp_config, args.agent_config, args.orchestrator_config]
    named.append(args.initial_messages)
    for pairs in (args.snapshot, args.config, args.artifact):
        named += [spec.partition("=")[2] for spec in pairs or []]
    for path in named:
        if path and not os.path.exists(path):
            raise CasError(f"cannot read {path}: No such file or directory")


def cmd_record(args: argparse.Namespace) -> int:
    from casstore.runs.recording import record_run
    from casstore.store.refs import named_ref

    if args.ref:
        named_ref("runs", args.ref)  # a bad name is refused, not renamed
    _require_files(args)
    argv = list(args.runner_argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    params: dict[str, Any] = {}
    if args.param:  # else the base's, if any
        extra = _pairs(args.param, "--param", "KEY=VALUE")
        params["orchestrator_extra_args"] = {k: _value(v) for k, v in extra.items()}
    for field, value in (
        ("trajectory_id", args.trajectory_id),
        ("orchestrator_model", args.model),
        ("seed", args.seed),
    ):
        if value is not None:
            params[field] = value
    if args.deterministic:
        params["deterministic"] = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recorded = record_run(
            args.trajectory,
            store=args.store,
            snapshots=_pairs(args.snapshot, "--snapshot", "ROLE=PATH"),
            mcp_config=args.mcp_config,
            agent_config=args.agent_config,
            orchestrator_config=args.orchestrator_config,
            initial_messages=args.initial_messages,
            configs=_pairs(args.config, "--config", "NAME=PATH"),
            artifacts=_pairs(args.artifact, "--artifact", "NAME=PATH"),
            params=params,
            env=args.env,
            runner_argv=argv or None,
            runner_cwd=args.cwd,
            base=args.base,
            ref=args.ref,
            code_root=args.code_root,
            strict=args.strict,
        )
    for warning in caught:
        print(f"cas: warning: {str(warning.message).removeprefix('casstore: ')}", file=sys.stderr)
    if args.json:
        print_json(
            {
                "digest": recorded.digest,
                "ref": recorded.ref,
                "sidecar": str(recorded.sidecar) if recorded.sidecar else None,
                "spooled": recorded.spooled,
            }
        )
    else:
        where = "  (in the spool: cas push --spool sends it)" if recorded.spooled else ""
        print(f"{recorded.digest}  {recorded.ref or '(not stored)'}{where}")
    return EXIT_OK


def register(add: Adder) -> None:
    p = add(
        "record",
        cmd_record,
        "record a run from its files: configs, snapshots, trajectory and the runner's "
        "command line after --; prints the manifest's digest and its ref",
    )
    p.add_argument("--trajectory", required=True, metavar="PATH", help="the run's trajectory")
    p.add_argument(
        "--snapshot",
        action="append",
        default=[],
        metavar="ROLE=PATH",
        help="a snapshot (folder, zip, tar[.gz|.zst]): initial=..., final=...; repeatable",
    )
    p.add_argument("--mcp-config", metavar="PATH", help="the MCP servers (JSON)")
    p.add_argument("--agent-config", metavar="PATH", help="the agent config (JSON)")
    p.add_argument("--orchestrator-config", metavar="PATH", help="the orchestrator config")
    p.add_argument("--initial-messages", metavar="PATH", help="the initial messages (JSON)")
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="any other JSON input, by name (custom args, task fields...); repeatable",
    )
    p.add_argument(
        "--artifact",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="any other file the run made; repeatable",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an orchestrator extra arg (temperature=0, seed=7); repeatable",
    )
    p.add_argument("--trajectory-id", metavar="ID")
    p.add_argument("--model", metavar="NAME", help="the orchestrator model")
    p.add_argument("--seed", type=int, metavar="N")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME",
        help="an environment variable to record (secret-named ones redacted); repeatable",
    )
    p.add_argument(
        "--base",
        metavar="SIDECAR|DIGEST",
        help="complete a run the runner recorded: its manifest, with what is given here added",
    )
    p.add_argument("--ref", metavar="NAME", help="the run's ref: runs/NAME (default: its id)")
    p.add_argument("--cwd", metavar="DIR", help="the folder the runner ran in (default: this one)")
    p.add_argument("--code-root", metavar="DIR", help="the checkout of the runner's code")
    p.add_argument("--strict", action="store_true", help="fail instead of warning")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument(
        "runner_argv",
        nargs=argparse.REMAINDER,
        metavar="-- RUNNER ARGV",
        help="the runner's command line, for cas replay",
    )
