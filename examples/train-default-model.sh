#!/usr/bin/env bash
# Reproduces the default model shipped in aegen/data/default.safetensors, exactly:
# a small U-Net trained with aegen itself on Fashion-MNIST (MIT licence) at 32x32, on the
# schedule sampler's own noisy inputs (--objective denoise, docs/objectives.md).
# It was trained before aegen had a fast path, in fp32 with the contiguous (NCHW) layout and a
# constant learning rate: --precision fp32 --contiguous gives those exact arithmetic steps.
#   apt-get install dataset-fashion-mnist      # puts the IDX files in /usr/share/datasets
#   bash examples/train-default-model.sh [OUT]
set -euo pipefail
data=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}/train-images-idx3-ubyte.gz
out=${1:-default.safetensors}
aegen train "$data" --arch unet --set width=16 --set depth=3 --size 32 \
    --objective denoise --epochs 9 --batch-size 64 --lr 1e-3 --seed 0 \
    --precision fp32 --contiguous --out "$out" --force
