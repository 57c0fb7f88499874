#!/usr/bin/env bash
# Train a small U-Net on a folder of images, then sample from it.
#   bash examples/quickstart.sh ./photos [OUTDIR]
# EPOCHS, SIZE and WIDTH may be set in the environment (defaults: 5, 32, 32).
# It prints an estimate of its running time first. With the defaults on 720 photographs it took
# 80 s on an idle 2-core CPU without a GPU (training is most of it), and 3 min 20 s and 3 min
# 45 s while other jobs shared the two cores. A GPU is much faster. EPOCHS=20 gives better
# samples (and takes 4 times as long to train).
set -euo pipefail
data=${1:?usage: quickstart.sh DATA [OUTDIR]}
out=${2:-quickstart}
epochs=${EPOCHS:-5} size=${SIZE:-32} width=${WIDTH:-32}

# The estimate: seconds per image per epoch measured at 32x32, width 32 on 2 idle CPU cores,
# scaled by pixels and by width squared (the cost of a convolution), plus about 30 s of start-up
# and sampling at the defaults. Other jobs sharing the cores make it several times longer.
if [ -d "$data" ]; then
    images=$(find -L "$data" -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \
        -o -iname '*.webp' -o -iname '*.bmp' \) | wc -l)
    awk -v n="$images" -v e="$epochs" -v s="$size" -v w="$width" 'BEGIN {
        k = (s / 32) ^ 2 * (w / 32) ^ 2
        t = n * e * 0.0135 * k + 10 + 20 * k
        if (t < 90) when = sprintf("%d s", 10 * int(t / 10 + 0.5))
        else when = sprintf("%d min", t / 60 + 0.5)
        printf "quickstart: %d images, %d epochs at %dx%d: about %s on an idle 2-core CPU%s\n",
            n, e, s, s, when, " (a GPU is much faster)" > "/dev/stderr" }'
fi

mkdir -p "$out"
aegen train "$data" --size "$size" --set width="$width" --set depth=3 \
    --epochs "$epochs" --seed 0 --out "$out/model.safetensors" --force
aegen info "$out/model.safetensors"
aegen generate -c "$out/model.safetensors" --schedule linear --steps 100 --n 16 --seed 0 \
    --out "$out/grid.png" --force
aegen generate -c "$out/model.safetensors" --schedule cosine --steps 100 --n 16 --seed 0 \
    --out-dir "$out/samples" --name "{index:02d}-seed{seed}.png" --every 25 \
    --frames "$out/steps" --force --json > "$out/samples.json"
echo "wrote $out/grid.png, $out/samples/ and $out/steps/" >&2
