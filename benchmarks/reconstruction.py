"""Can a model reproduce each Fashion-MNIST class at all? One pass on nearly clean test images.

The schedule sampler's last steps feed the model c * image + (1 - c) * N(mu, sigma) with c close
to 1, so a sample can only be as recognisable as the model's output on such inputs. This feeds
64 test images of each class (one batch, batch norm on batch statistics, as `aegen generate`
runs) through the model once and reports, per class, the share the judge of record labels as
that class with confidence >= 0.9; the first row is the clean images themselves. A class that
collapses here (docs/default-model.md: coats, which come out as pullovers) cannot be sampled
recognisably by any sampler setting.

    python benchmarks/reconstruction.py --judge judge-bn.pt [--c 0.99] CHECKPOINT...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402  (the benchmark's own judge and data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    quality.add_judge_option(parser)
    parser.add_argument("--c", type=float, default=0.99, help="share of the image in the input")
    parser.add_argument("--per-class", type=int, default=64)
    args = parser.parse_args()

    from aegen.checkpoint import load_checkpoint

    _, test_x, test_y, judge = quality.judge_of_record(args.judge)
    images = torch.cat([test_x[test_y == k][: args.per_class] for k in range(10)])
    labels = torch.arange(10).repeat_interleave(args.per_class)

    def own_class(batch: torch.Tensor) -> str:
        conf, label = quality.confidences(judge, batch.clamp(0, 1))
        sure = (label == labels) & (conf >= 0.9)
        return " ".join(f"{sure[labels == k].float().mean():>6.0%}" for k in range(10))

    print(f"share of {args.per_class} test images per class confidently judged as their own "
          f"class, after one model pass on {args.c} * image + {1 - args.c:.2g} * noise")
    print(f"{'':36} " + " ".join(f"{name[:6]:>6}" for name in quality.CLASSES))
    print(f"{'the clean images':36} {own_class(images)}")
    for checkpoint in args.checkpoints:
        loaded = load_checkpoint(checkpoint)
        trained = (loaded.info.objective or {}).get("options") or {}
        mu, sigma = trained.get("mu", 0.7), trained.get("sigma", 0.2)  # the sampler's noise
        noise = torch.empty_like(images).normal_(mu, sigma,
                                                 generator=torch.Generator().manual_seed(0))
        model = loaded.model.train()  # batch statistics, as aegen generate samples
        with torch.no_grad():
            output = model(args.c * images + (1 - args.c) * noise)
        print(f"{str(checkpoint)[-36:]:36} {own_class(output)}", flush=True)


if __name__ == "__main__":
    main()
