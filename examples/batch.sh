#!/usr/bin/env bash
# Generate a grid for every schedule and seed, collect the JSON reports, stop at the first failure.
#   bash examples/batch.sh [CHECKPOINT]            (no checkpoint: the default model)
# Settings from the environment: OUT (batch), SCHEDULES ("linear cosine"), STEPS (50), N (16
# images per grid), GRIDS (3 per schedule) or SEEDS (the first seed of each grid). Image i of a
# grid uses seed + i, so the default seeds step by N (0, N, 2N, ...): no two grids share an
# image. Writes OUT/<schedule>-<seed>.png and OUT/reports.json (a JSON array).
set -euo pipefail
checkpoint=${1:-}
out=${OUT:-batch}
n=${N:-16}
seeds=${SEEDS:-$(seq 0 "$n" $(( (${GRIDS:-3} - 1) * n )))}
mkdir -p "$out"
reports="$out/reports.jsonl"
: > "$reports"
for schedule in ${SCHEDULES:-linear cosine}; do
  for seed in $seeds; do
    # set -e stops the loop here if aegen exits non-zero (2: bad usage, 1: runtime failure)
    aegen generate ${checkpoint:+-c "$checkpoint"} --schedule "$schedule" --seed "$seed" \
        --steps "${STEPS:-50}" --n "$n" --out "$out/$schedule-$seed.png" \
        --force --quiet --json | python -c "import json, sys; print(json.dumps(json.load(sys.stdin)))" >> "$reports"
  done
done
python - "$reports" "$out/reports.json" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
json.dump(rows, open(sys.argv[2], "w"), indent=2)
print(sys.argv[2])
PY
