#!/usr/bin/env bash
# Train a small U-Net on a folder of images, then sample from it.
#   bash examples/quickstart.sh ../shared/data/flowers17/train [OUTDIR]
# EPOCHS, SIZE and WIDTH may be set in the environment (defaults: 10, 32, 32).
set -euo pipefail
data=${1:?usage: quickstart.sh DATA [OUTDIR]}
out=${2:-quickstart}
mkdir -p "$out"
aegen train "$data" --size "${SIZE:-32}" --set width="${WIDTH:-32}" --set depth=3 \
    --epochs "${EPOCHS:-10}" --seed 0 --out "$out/model.safetensors" --force
aegen info "$out/model.safetensors"
aegen generate -c "$out/model.safetensors" --schedule linear --steps 100 --n 16 --seed 0 \
    --out "$out/grid.png" --force
aegen generate -c "$out/model.safetensors" --schedule cosine --steps 100 --n 16 --seed 0 \
    --out-dir "$out/samples" --name "{index:02d}-seed{seed}.png" --every 25 \
    --frames "$out/steps" --force --json > "$out/samples.json"
echo "wrote $out/grid.png, $out/samples/ and $out/steps/" >&2
