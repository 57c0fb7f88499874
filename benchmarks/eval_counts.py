"""How the sample count moves FID and KID: both halves of one real set (Fashion-MNIST's first
1,000 test images, so the true distance is 0), compared at growing counts from the first 2N.

    python benchmarks/eval_counts.py [--reference PATH --reference-n 1000 --size 32]

Reads the reference features from aegen's cache (extracting them if absent: about 5 minutes
for 1,000 images on 2 CPU cores), as `aegen eval --reference PATH --reference-n N` stores them.
"""

from __future__ import annotations

import argparse

import torch

from aegen.console import Reporter
from aegen.evaluation import EvalSettings, metrics
from aegen.evaluation.inception import load_extractor
from aegen.evaluation.task import DEFAULT_REFERENCE, reference_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=str(DEFAULT_REFERENCE))
    parser.add_argument("--reference-n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(2)
    settings = EvalSettings(reference=args.reference, reference_n=args.reference_n)
    features, _ = reference_features(args.reference, args.size, settings, load_extractor(),
                                     Reporter())
    half = len(features) // 2
    print(f"{'N + N':>9} {'FID':>8} {'KID x 1000':>16}")
    for n in (50, 100, 250, half):
        a, b = features[:n], features[half:half + n]
        mean, std, size = metrics.kid(a, b)
        print(f"{n:>4} + {n:<4} {metrics.fid(a, b):8.2f} {mean * 1000:8.2f} ± {std * 1000:5.2f}"
              f"  (subsets of {size})", flush=True)


if __name__ == "__main__":
    main()
