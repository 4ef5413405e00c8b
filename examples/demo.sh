#!/usr/bin/env bash
# `make demo`: put, get, verify and tag on the embedded local store from store.toml.
set -euo pipefail

# Artifacts go to demo-out/ (ignored by git) so the paths below stay readable.
work=demo-out
rm -rf "$work"
mkdir -p "$work"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "The store: store.toml names the embedded local store .cas/"
show cas init

step "Some artifacts of an agent run"
python3 - "$work" <<'PY'
import json, random, sys
from pathlib import Path
out = Path(sys.argv[1])
rng = random.Random(42)
(out / "trajectory.json").write_text(json.dumps(
    [{"role": "user", "content": "Fix the failing test."},
     {"role": "assistant", "content": "Running pytest ... " * 200}], indent=2))
(out / "agent_config.json").write_text(json.dumps({"max_steps": 50, "temperature": 0}))
words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(2000)]
with open(out / "snapshot.tar", "wb") as f:
    for _ in range(40):
        f.write(b" ".join(rng.choices(words, k=100_000)))
PY
ls -l "$work"

step "cas put: each file is stored under the BLAKE3 digest of its content"
show cas put "$work/trajectory.json" "$work/agent_config.json" "$work/snapshot.tar"
snapshot=$(cas put "$work/snapshot.tar" | cut -d' ' -f1)
trajectory=$(cas put "$work/trajectory.json" | cut -d' ' -f1)

step "Putting the same content again stores nothing new: the digest is the address"
show cas put --json "$work/snapshot.tar"

step "cas stat: stored compressed with zstd; the digest is of the content, not the stored bytes"
show cas stat "$snapshot"

step "cas get: every byte is re-hashed before it reaches the destination"
show cas get "$snapshot" -o "$work/snapshot.copy.tar"
show cmp "$work/snapshot.tar" "$work/snapshot.copy.tar" && echo "identical"
show cas get "${trajectory:7:12}" -o "$work/t.json"   # a unique prefix is enough
head -c 120 "$work/t.json"; echo " ..."

step "cas tag: a name for a digest"
show cas tag demo-trajectory "$trajectory"
show cas tags
show cas verify demo-trajectory "$snapshot"

step "Snapshots as trees: one digest for one filesystem state, whatever the container"
mkdir -p "$work/env/src" "$work/env/tests"
for i in $(seq 1 40); do printf 'def f%s():\n    return %s\n' "$i" "$i" > "$work/env/src/m$i.py"; done
printf 'print("ok")\n' > "$work/env/tests/test_all.py"
tar -czf "$work/initial.tar.gz" -C "$work/env" .
show cas tree "$work/env" "$work/initial.tar.gz"
initial=$(cas put --tree "$work/initial.tar.gz" | cut -d' ' -f1)
echo "# the agent edits one file and adds another"
printf 'def f7():\n    return 700\n' > "$work/env/src/m7.py"
printf 'notes\n' > "$work/env/NOTES.md"
final=$(cas put --tree "$work/env" | cut -d' ' -f1)
show cas diff "$initial" "$final"
show cas get "$final" -o "$work/final.zip"
show cas tree "$work/final.zip"

step "Corruption is detected, never returned (on a scratch copy of the object)"
scratch="$work/scratch-store"
cas --store "$scratch" init >/dev/null
cas --store "$scratch" put "$work/trajectory.json" >/dev/null
object=$(find "$scratch/objects" -type f | head -n 1)
python3 - "$object" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[-1] ^= 1; open(p, "wb").write(b)
PY
echo "(flipped one bit of the stored object in $scratch)"
set +e
show cas --store "$scratch" get "$trajectory" -o "$work/bad.json"
code=$?
set -e
echo "exit code $code (4 = integrity failure); $work/bad.json was $( [ -e "$work/bad.json" ] && echo written || echo "not written")"

rm -rf "$scratch"
step "Done. Digests print in full; check one with any BLAKE3 tool, e.g. b3sum. Files: $work/"
