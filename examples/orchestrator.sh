#!/usr/bin/env bash
# An orchestrator shaped like archipelago's (examples/simple_task/main.py there), all
# local: environment service -> runner -> final snapshot -> grader. It records the whole
# run with nothing but `cas record` and files, whatever language the orchestrator is in.
#
#   examples/orchestrator.sh TASK_DIR OUT_DIR TRAJECTORY_ID [SEED]
#
# TASK_DIR holds what examples/make_inputs.py writes. The store is the one `cas` finds
# here ($CAS_STORE, else store.toml); the runner and the grader, started in their own
# folders, record into the same one.
set -euo pipefail
CAS_STORE=$(cas info --url)
export CAS_STORE

task=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
trajectory_id=$3
seed=${4:-7}
examples=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$(dirname "$examples")${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python3}

# 1. The environment service: here a folder populated from the initial snapshot; its
#    gateway URL is what the runner is given (archipelago: http://localhost:8080/mcp/).
env_dir="$out/environment"
rm -rf "$env_dir"
"$python" -m zipfile -e "$task/env.zip" "$env_dir"
gateway="file://$env_dir"
# 2. MCP servers are configured on the service (archipelago: POST /apps); nothing to do
#    locally, but the config is an input of the run, recorded below.

# 3. The runner, started as archipelago starts it: from its folder, as a module.
runner=(
  "$python" -m runner.main
  --trajectory-id "$trajectory_id"
  --initial-messages "$task/messages.json"
  --mcp-gateway-url "$gateway"
  --agent-config "$task/agent_config.json"
  --orchestrator-model fake/echo-1
  --orchestrator-extra-args "$task/extra_args.json"
  --output "$out/trajectory.json"
  --seed "$seed" --deterministic
)
(cd "$examples/agents" && "${runner[@]}")

# 4. The final snapshot, taken from the service after the runner exits.
tar -czf "$out/final_snapshot.tar.gz" -C "$env_dir" .

# 5. The whole run: the runner recorded what it saw (its sidecar, the --base); the
#    orchestrator adds the snapshots and the MCP config, and the runner's command line.
cas record --base "$out/trajectory.manifest.json" \
  --trajectory "$out/trajectory.json" \
  --snapshot "initial=$task/env.zip" --snapshot "final=$out/final_snapshot.tar.gz" \
  --mcp-config "$task/mcp.json" \
  --cwd "$examples/agents" -- "${runner[@]}"

# 6. The grader scores the final snapshot and the trajectory, and records the grading.
(cd "$examples/grading" && "$python" -m grader.main \
  --grading-run-id "grade-$trajectory_id" --trajectory-id "$trajectory_id" \
  --initial-snapshot "$task/env.zip" --final-snapshot "$out/final_snapshot.tar.gz" \
  --trajectory "$out/trajectory.json" \
  --grading-settings "$task/grading_settings.json" --verifiers "$task/verifiers.json" \
  --scoring-config "$task/scoring_config.json" --output "$out/grades.json")
