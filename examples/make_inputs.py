"""Write the inputs of an example run into a folder: initial messages, agent config,
orchestrator extra args, MCP config (with a token, to show that it is redacted), an
environment snapshot, and the grader's settings, verifiers and scoring config.

    python examples/make_inputs.py OUT [--seed N] [--token TOKEN]

Seeded: the same seed writes the same bytes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import zipfile
from pathlib import Path


def make_inputs(out: Path, seed: int = 0, token: str = "ghp_exampleTokenNotARealOne0000") -> None:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    messages = [
        {"role": "system", "content": "You are a careful data analyst."},
        {"role": "user", "content": "Fix the totals in reports/q3.csv and summarise them."},
    ]
    (out / "messages.json").write_text(json.dumps(messages, indent=2))
    agent_config = {
        "agent_config_id": "loop-v1",
        "agent_name": "react",
        "agent_config_values": {"max_steps": 4, "timeout_s": 600},
    }
    (out / "agent_config.json").write_text(json.dumps(agent_config, indent=2))
    mcp = {
        "mcpServers": {
            "filesystem": {"command": "mcp-fs", "args": ["--root", "/workspace"]},
            "github": {
                "command": "mcp-github",
                "args": ["--read-only"],
                "env": {"GITHUB_TOKEN": token},
            },
        }
    }
    (out / "mcp.json").write_text(json.dumps(mcp, indent=2))
    (out / "extra_args.json").write_text(json.dumps({"temperature": 0.7}, indent=2))
    (out / "grading_settings.json").write_text(
        json.dumps({"llm_judge_model": "fake/judge-1", "llm_judge_temperature": 0}, indent=2)
    )
    verifiers = [
        {"verifier_id": "totals-fixed", "kind": "file_changed", "path": "reports/q3.csv"},
        {"verifier_id": "summary", "kind": "judge", "rubric": "states the corrected total"},
        {"verifier_id": "finished", "kind": "finished", "weight": 0.5},
    ]
    (out / "verifiers.json").write_text(json.dumps(verifiers, indent=2))
    (out / "scoring_config.json").write_text(json.dumps({"method": "weighted_mean"}, indent=2))
    words = ["alpha", "beta", "gamma", "delta", "total", "revenue", "cost", "q3", "note"]
    with zipfile.ZipFile(out / "env.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(40):
            rows = "\n".join(
                ",".join(str(rng.randrange(1000)) for _ in range(6)) for _ in range(50)
            )
            z.writestr(f"reports/r{i:02}.csv", "a,b,c,d,e,f\n" + rows + "\n")
        z.writestr("reports/q3.csv", "item,amount\nrevenue,1200\ncost,800\ntotal,300\n")
        z.writestr("README.md", " ".join(rng.choices(words, k=400)) + "\n")
        z.writestr("tools/run.sh", "#!/bin/sh\necho run\n")
        # A binary file over 1 MiB, as environments hold (a database): stored on its own.
        pages = [rng.randbytes(64) + bytes(4032) for _ in range(16)]
        z.writestr("data/sales.db", b"".join(rng.choice(pages) for _ in range(400)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--token", default="ghp_exampleTokenNotARealOne0000")
    args = parser.parse_args(argv)
    make_inputs(args.out, args.seed, args.token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
