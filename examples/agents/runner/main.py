"""A runner with archipelago's command line (``agents/runner/main.py``) and a deterministic
fake agent: no LLM, no network. It works on an environment reached through
``--mcp-gateway-url`` (here a ``file://`` folder, the environment service's
filesystem), reads ``--orchestrator-extra-args`` from a file, and records its run
with casstore; the lines that integrate casstore end in ``# casstore``.

    cd examples/agents && python -m runner.main --trajectory-id t1 \\
        --initial-messages messages.json --agent-config agent_config.json \\
        --mcp-gateway-url file:///srv/env --orchestrator-model fake/echo-1 \\
        --orchestrator-extra-args extra_args.json --output trajectory.json --seed 7
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runner_hooks import RunRecorder, add_reproducibility_args, apply_determinism  # casstore


def fake_agent(
    workdir: Path, messages: list[Any], config: dict[str, Any], extra: dict[str, Any]
) -> list[dict[str, Any]]:
    """Edit files in ``workdir`` as an agent would; the same inputs give the same edits.

    A temperature above 0 draws from a seed of its own (as a provider without a seed
    would), so only a seeded, deterministic run repeats exactly.
    """
    seed = extra.get("seed") if extra.get("temperature", 1) == 0 else random.randrange(1 << 30)
    task = json.dumps([messages, config, extra], sort_keys=True)
    rng = random.Random(f"{seed}:{hashlib.sha256(task.encode()).hexdigest()}")
    steps: list[dict[str, Any]] = []
    files = sorted(p for p in workdir.rglob("*") if p.is_file())
    values = config.get("agent_config_values", {})
    for step in range(int(values.get("max_steps", 3))):
        target = rng.choice(files) if files and rng.random() < 0.7 else workdir / f"note{step}.md"
        with open(target, "a", encoding="utf-8") as f:
            f.write(f"\nstep {step}: {rng.getrandbits(64):016x}\n")
        steps.append({"role": "assistant", "content": f"edited {target.relative_to(workdir)}"})
    steps.append({"role": "assistant", "content": "done"})
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectory-id", required=True)
    parser.add_argument("--initial-messages", required=True, help="JSON file of messages")
    parser.add_argument("--mcp-gateway-url", required=True, help="the environment's gateway")
    parser.add_argument("--agent-config", required=True, help="JSON file: AgentConfig")
    parser.add_argument("--orchestrator-model", required=True)
    parser.add_argument("--orchestrator-extra-args", help="JSON file of extra args (optional)")
    parser.add_argument("--output", help="trajectory JSON to write")
    add_reproducibility_args(parser)  # casstore
    args = parser.parse_args(argv)

    extra_args: dict[str, Any] = {}
    if args.orchestrator_extra_args:
        extra_args = json.loads(Path(args.orchestrator_extra_args).read_text())
    extra_args = apply_determinism(args, extra_args)  # casstore
    messages = json.loads(Path(args.initial_messages).read_text())
    config = json.loads(Path(args.agent_config).read_text())
    gateway = urlsplit(args.mcp_gateway_url)
    if gateway.scheme != "file":
        parser.error("this fake runner's gateway is a file:// URL of the environment")
    with RunRecorder.from_args(args, extra_args) as recorder:  # casstore
        effective = {"max_steps": 3, **config.get("agent_config_values", {})}
        recorder.attach_config("agent_effective", effective)  # casstore
        steps = fake_agent(Path(gateway.path), messages, config, extra_args)
        trajectory = {"trajectory_id": args.trajectory_id, "status": "completed", "messages": steps}
        output = Path(args.output or "trajectory.json")
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(trajectory, indent=2))
        recorder.finish(output)  # casstore
    return 0


if __name__ == "__main__":
    sys.exit(main())
