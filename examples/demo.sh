#!/usr/bin/env bash
# `make demo`: two teams and one run, on local stores.
#   Team A is the embedded local store named by store.toml (.cas/ beside it).
#   Team B is a second local store (demo-out/team-b), chosen with $CAS_STORE.
#   A bundle file stands in for the shared S3 bucket.
set -euo pipefail

work=demo-out
rm -rf "$work"
mkdir -p "$work"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
team_b() { CAS_STORE="$PWD/$work/team-b" "$@"; }

step "The basics: cas put stores a file under the BLAKE3 digest of its content"
show cas init
printf 'hello, casstore\n' > "$work/hello.txt"
show cas put "$work/hello.txt"
hello=$(cas put "$work/hello.txt" | cut -d' ' -f1)
echo "# b3sum agrees: $(python3 -c 'import blake3,sys; print(blake3.blake3(open(sys.argv[1],"rb").read()).hexdigest())' "$work/hello.txt")"
show cas cat "${hello:7:12}"     # a unique prefix is enough

step "Team A runs a task twice, as archipelago does: orchestrator, environment, runner, grader"
python3 examples/make_inputs.py "$work/inputs"
echo "# inputs: $(cd "$work/inputs" && echo *) -- mcp.json holds a GitHub token"
echo "# examples/orchestrator.sh populates an environment, starts the runner (python -m"
echo "# runner.main), snapshots the environment, records the whole run with \`cas record\`,"
echo "# and grades it; the runner and the grader record what they saw"
for seed in 1 2; do
  show examples/orchestrator.sh "$work/inputs" "$work/team-a/run$seed" "team-a-$seed" "$seed"
done
run1=$(python3 -c 'import blake3,sys; print("blake3:"+blake3.blake3(open(sys.argv[1],"rb").read()).hexdigest())' "$work/team-a/run1/trajectory.manifest.json")
run2=$(python3 -c 'import blake3,sys; print("blake3:"+blake3.blake3(open(sys.argv[1],"rb").read()).hexdigest())' "$work/team-a/run2/trajectory.manifest.json")
echo "# each run left trajectory.manifest.json beside its trajectory: its BLAKE3 is the run's digest"
show cas runs

step "The run manifest: code, parameters, and every input and output by digest"
show cas manifest show "$run1"
mcp=$(cas manifest show --json "$run1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["mcp_config"]["digest"])')
echo "# the MCP config as stored: the token never left team A"
show cas cat "$mcp"; echo

step "Why do the two runs differ? cas diff compares them input by input"
show cas diff "$run1" "$run2"

step "Team A hands run 1 to team B as one file (a bucket would do the same: cas push)"
show cas bundle "$run1" -o "$work/run1.casb"

step "Team B, with an empty store and the digest, imports and verifies every byte"
show team_b cas init "$work/team-b"
show team_b cas unbundle "$work/run1.casb"
show team_b cas verify "$run1"

step "Team B checks the files it was handed against the run before grading them"
show team_b cas verify "$run1" --snapshot "final=$work/team-a/run1/final_snapshot.tar.gz" \
  --trajectory "$work/team-a/run1/trajectory.json"
echo "# a snapshot edited after the run is caught, with what differs:"
python3 - "$work" <<'PY'
import io, sys, tarfile
src = f"{sys.argv[1]}/team-a/run1/final_snapshot.tar.gz"
with tarfile.open(src) as t, tarfile.open(f"{sys.argv[1]}/edited.tar.gz", "w:gz") as out:
    for info in t.getmembers():
        data = t.extractfile(info).read() if info.isfile() else None
        if info.name == "./reports/q3.csv":
            data = data.replace(b"revenue,1200", b"revenue,9999")
            info.size = len(data)
        out.addfile(info, io.BytesIO(data) if data is not None else None)
PY
set +e
show team_b cas verify "$run1" --snapshot "final=$work/edited.tar.gz"
echo "exit code $? (4 = does not match the run)"
set -e

step "Team B replays run 1: inputs fetched and verified, and the command to run it again"
show team_b cas replay "$run1" --into "$work/team-b/replay"
command=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["command_line"])' "$work/team-b/replay/replay.json")
echo "# team B fills in the placeholders (where its copy of the runner's code is, when not"
echo "# in a git checkout; an environment holding the initial snapshot), runs the command:"
export CODE_ROOT=$PWD/examples/agents MCP_GATEWAY_URL="file://$PWD/$work/team-b/replay/initial"
team_b bash -c "$command"
echo "# and records the replay as the orchestrator recorded the run:"
replay=$work/team-b/replay
replayed=$(team_b cas record --base "$replay/output/trajectory.manifest.json" \
  --trajectory "$replay/output/trajectory.json" --mcp-config "$replay/mcp_config.json" \
  --snapshot "initial=$replay/initial.zip" --snapshot "final=$replay/initial" | cut -d' ' -f1)
show team_b cas diff "$run1" "$replayed"
echo "# same seed, same inputs, same command: the same final snapshot and trajectory"

step "One flipped bit in team B's store: caught, and named by role"
python3 - "$work/team-b" "$run1" <<'PY'
import json, sys
from casstore import open_store
from casstore.format import layout
store = open_store(sys.argv[1])
run = json.loads(store.get_bytes(sys.argv[2]))
tree = json.loads(store.get_bytes(run["initial_snapshot"]["digest"]))
db = next(e["digest"] for e in tree["entries"] if e["path"] == "data/sales.db")
key = layout.object_key(db)
data = bytearray(store.backend.read_bytes(key)); data[-1] ^= 1
store.backend.write_bytes(key, bytes(data))
print(f"(flipped one bit of data/sales.db, {db})")
PY
set +e
show team_b cas verify "$run1"
echo "exit code $? (4 = integrity failure)"
set -e

step "Done. Every digest printed in full; check any with b3sum. Files: $work/"
