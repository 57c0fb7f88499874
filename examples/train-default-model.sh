#!/usr/bin/env bash
# Reproduces the default model shipped in aegen/data/default.safetensors, exactly:
# a small U-Net trained with aegen itself on Fashion-MNIST (MIT licence) at 32x32, on the
# schedule sampler's own noisy inputs (--objective denoise, docs/objectives.md), saving the
# exponential moving average of its weights (--ema 0.999) as the model.
# bf16 autocast and the channels-last layout are pinned because they are what --precision auto
# chose on the CPU it was trained on; other arithmetic gives a similar, not identical, model.
# About 12 minutes on a 2-core CPU with native bf16 (docs/default-model.md).
# Without native bf16 it is emulated and far slower: about 30 minutes an epoch (1.9 s a step) on a
# 2-core AMD EPYC with avx2 only (grep -o 'avx512_bf16\|amx_bf16' /proc/cpuinfo shows which you have).
#   apt-get install dataset-fashion-mnist      # puts the IDX files in /usr/share/datasets
#   bash examples/train-default-model.sh [OUT]
set -euo pipefail
data=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}/train-images-idx3-ubyte.gz
out=${1:-default.safetensors}
aegen train "$data" --arch unet --set width=16 --set depth=3 --size 32 \
    --objective denoise --epochs 12 --batch-size 64 --lr 1e-3 --ema 0.999 --seed 0 \
    --precision bf16 --channels-last --out "$out" --force
