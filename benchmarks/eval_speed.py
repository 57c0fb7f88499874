"""Speed of `aegen eval`'s feature extraction (Inception-v3 at 299x299), and whether a reduced
precision keeps FID: images/s in fp32 channels-last (the default), fp32 contiguous and bf16
(autocast) channels-last, each on the same images, and FID between two real sets with each
one's features (bf16 is the default only if it moves FID by at most 0.5%; it is not).

    python benchmarks/eval_speed.py [--images 100 --batch 50 --threads 2]
      [--a /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz]
      [--b /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz]

Needs the eval extra (pip install 'aegen[eval]') and two data sets (by default Fashion-MNIST,
from Debian's dataset-fashion-mnist package), read at 32x32 as the default model sees them.
"""

from __future__ import annotations

import argparse
import time

import torch

from aegen.data import load_data
from aegen.evaluation import metrics
from aegen.evaluation.inception import load_extractor

FM = "/usr/share/datasets/fashion-mnist/"


def timed(extractor, images, channels_last: bool):
    """Features of `images` and the images/s of extracting them (after one warm-up batch)."""
    extractor(images[: extractor.batch_size])
    net = extractor.net
    if not channels_last:
        extractor.net = net.to(memory_format=torch.contiguous_format)
    start = time.perf_counter()
    features = extractor(images)
    seconds = time.perf_counter() - start
    extractor.net = net.to(memory_format=torch.channels_last)
    return features, len(images) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="images of each set")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--a", default=FM + "train-images-idx3-ubyte.gz")
    parser.add_argument("--b", default=FM + "t10k-images-idx3-ubyte.gz")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    a = load_data(args.a, 32).images[: args.images]
    b = load_data(args.b, 32).images[: args.images]
    print(f"torch {torch.__version__}, {args.threads} threads, {args.images} + {args.images} "
          f"images of 32x32, batch {args.batch}")
    results = {}
    for label, precision, channels_last in (("fp32 channels-last", "fp32", True),
                                            ("fp32 contiguous", "fp32", False),
                                            ("bf16 channels-last", "bf16", True)):
        extractor = load_extractor("cpu", args.batch, precision)
        fa, speed_a = timed(extractor, a, channels_last)
        fb, speed_b = timed(extractor, b, channels_last)
        results[label] = metrics.fid(fa, fb)
        print(f"{label:20s} {(speed_a + speed_b) / 2:6.2f} images/s   FID(a, b) "
              f"{results[label]:.4f}", flush=True)
    base = results["fp32 channels-last"]
    for label, value in results.items():
        print(f"{label:20s} FID change against fp32: {100 * (value - base) / base:+.3f}%")


if __name__ == "__main__":
    main()
