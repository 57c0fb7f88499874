#!/usr/bin/env bash
# Remakes docs/gallery.md's pictures: a colour U-Net trained on flowers17 at 64x64, its schedule
# samples, a walk video and a denoise table.
#   bash examples/gallery.sh FLOWERS_DIR [WORK_DIR]
# FLOWERS_DIR holds train/ and test/ folders of photographs from the Oxford 17 Category Flower
# Dataset (Nilsback and Zisserman, 2006; https://www.robots.ox.ac.uk/~vgg/data/flowers/17/);
# docs/gallery.md used 12 species, 60 training and 20 test photographs each.
# About 40 minutes on a 2-core CPU (docs/gallery.md); EPOCHS (default 30) shortens it.
# The model and the denoise grid stay in WORK_DIR; only model outputs go to docs/gallery/.
set -euo pipefail
flowers=${1:?usage: gallery.sh FLOWERS_DIR [WORK_DIR]   (FLOWERS_DIR holds train/ and test/)}
work=${2:-gallery-work}
docs=$(dirname "$0")/../docs/gallery
mkdir -p "$work" "$docs"
aegen train "$flowers/train" --arch unet --set width=32 --set depth=4 --size 64 \
    --epochs "${EPOCHS:-30}" --seed 0 --out "$work/flowers64.safetensors" --force
aegen generate -c "$work/flowers64.safetensors" --schedule cosine --steps 200 --n 16 --seed 0 \
    --out "$docs/flowers64-samples.png" --force
aegen walk -c "$work/flowers64.safetensors" --n 16 --steps 60 --eps 0.2 --seed 0 \
    --video "$docs/flowers64-walk.mp4" --scale 1 --force
aegen denoise -c "$work/flowers64.safetensors" --input "$flowers/test" \
    --alpha 0.1,0.3,0.5,0.9 --seed 0 --out "$work/flowers64-denoise.png" --force
