#!/usr/bin/env bash
# Generate a grid for every schedule and seed, collect the JSON reports, stop at the first failure.
#   bash examples/batch.sh [CHECKPOINT]            (no checkpoint: the default model)
# Settings from the environment: OUT (batch), SCHEDULES ("linear cosine"), SEEDS ("0 1 2"),
# STEPS (50), N (16). Writes OUT/<schedule>-<seed>.png and OUT/reports.json (a JSON array).
set -euo pipefail
checkpoint=${1:-}
out=${OUT:-batch}
mkdir -p "$out"
reports="$out/reports.jsonl"
: > "$reports"
for schedule in ${SCHEDULES:-linear cosine}; do
  for seed in ${SEEDS:-0 1 2}; do
    # set -e stops the loop here if aegen exits non-zero (2: bad usage, 1: runtime failure)
    aegen generate ${checkpoint:+-c "$checkpoint"} --schedule "$schedule" --seed "$seed" \
        --steps "${STEPS:-50}" --n "${N:-16}" --out "$out/$schedule-$seed.png" \
        --force --quiet --json | python -c "import json, sys; print(json.dumps(json.load(sys.stdin)))" >> "$reports"
  done
done
python - "$reports" "$out/reports.json" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
json.dump(rows, open(sys.argv[2], "w"), indent=2)
print(sys.argv[2])
PY
