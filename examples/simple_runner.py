"""An agent runner with the flags of archipelago's ``agents/runner/main.py`` and a
deterministic fake agent (no LLM, no network), recording every run with casstore.

The lines that integrate casstore end in ``# casstore``; there are fewer than 15.

    python examples/simple_runner.py --trajectory-id t1 --initial-messages messages.json \\
        --agent-config agent_config.json --orchestrator-model fake/echo-1 \\
        --orchestrator-extra-args '{"temperature": 0.7}' --mcp-config mcp.json \\
        --initial-snapshot env.zip --output out/trajectory.json --seed 7 --deterministic
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from runner_hooks import RunRecorder, add_reproducibility_args, apply_determinism  # casstore


def fake_agent(
    workdir: Path, messages: list[dict[str, Any]], config: dict[str, Any], extra: dict[str, Any]
) -> list[dict[str, Any]]:
    """Edit files in ``workdir`` like an agent would; the same inputs give the same edits.

    A temperature above 0 draws from a seed of its own (like a provider without a seed),
    so only a seeded, deterministic run repeats exactly.
    """
    seed = extra.get("seed") if extra.get("temperature", 1) == 0 else random.randrange(1 << 30)
    task = json.dumps(messages, sort_keys=True) + json.dumps(config, sort_keys=True)
    rng = random.Random(f"{seed}:{hashlib.sha256(task.encode()).hexdigest()}")
    steps: list[dict[str, Any]] = list(messages)
    files = sorted(p for p in workdir.rglob("*") if p.is_file())
    for step in range(int(config.get("agent_config_values", {}).get("max_steps", 3))):
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
    parser.add_argument("--agent-config", required=True, help="JSON file: AgentConfig")
    parser.add_argument("--orchestrator-model", required=True)
    parser.add_argument("--orchestrator-extra-args", default="{}", help="JSON object")
    parser.add_argument("--mcp-config", help="JSON file: the MCP servers")
    parser.add_argument("--initial-snapshot", required=True, help="folder or .zip")
    parser.add_argument("--output", required=True, help="trajectory.json to write")
    add_reproducibility_args(parser)  # casstore
    args = parser.parse_args(argv)

    extra_args = json.loads(args.orchestrator_extra_args)
    extra_args = apply_determinism(args, extra_args)  # casstore
    messages = json.loads(Path(args.initial_messages).read_text())
    config = json.loads(Path(args.agent_config).read_text())
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with RunRecorder.from_args(args, extra_args) as recorder:  # casstore
        recorder.attach_snapshot("initial", args.initial_snapshot)  # casstore
        recorder.attach_mcp_config(args.mcp_config)  # casstore
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "env"
            if zipfile.is_zipfile(args.initial_snapshot):
                with zipfile.ZipFile(args.initial_snapshot) as z:
                    z.extractall(work)
            else:
                shutil.copytree(args.initial_snapshot, work)
            trajectory = fake_agent(work, messages, config, extra_args)
            final = output.with_name(output.stem + ".final.zip")
            shutil.make_archive(str(final.with_suffix("")), "zip", work)
        output.write_text(json.dumps({"trajectory_id": args.trajectory_id, "messages": trajectory}))
        recorder.attach_snapshot("final", final)  # casstore
        print(recorder.finish(output))  # casstore
    return 0


if __name__ == "__main__":
    sys.exit(main())
