"""Compare candidate default models on samples the figures of record do not use.

One line per checkpoint: the share of samples the judge of record labels with confidence >= 0.9,
the classes it labels confidently, the novel share (as benchmarks/quality.py), and for each
class how many samples it drew (top label) and how many of those were confident. A candidate is
"eligible" when every sample target holds; the rarest class's confident count ("min") says how
safely "every class appears" holds. This is how docs/default-model.md chooses between runs: on
fresh seeds (default 1000..2023), so that the choice cannot flatter the figures of record on
seeds 0..255.

    python benchmarks/candidates.py --judge judge-bn.pt run/e10.safetensors run/e12.safetensors
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402  (the benchmark's own judge, data and distances)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    quality.add_judge_option(parser)
    parser.add_argument("--seed", type=int, default=1000, help="first sample seed")
    parser.add_argument("--samples", type=int, default=1024)
    args = parser.parse_args()

    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    from aegen.outputs import Outputs
    from aegen.tasks import generate_files

    train_x, test_x, _, judge = quality.judge_of_record(args.judge)
    p5 = torch.quantile(quality.nearest_distances(test_x[:1000], train_x), 0.05).item()
    print(f"{args.samples} samples, seeds {args.seed}..{args.seed + args.samples - 1}, "
          "aegen generate's defaults; per class: drawn/confident")
    for checkpoint in args.checkpoints:
        with tempfile.TemporaryDirectory() as folder:
            report = generate_files(checkpoint, Outputs(out_dir=Path(folder)), n=args.samples,
                                    seed=args.seed, device="cpu")
            samples = torch.stack([pil_to_tensor(Image.open(i.path).convert("L"))
                                   for i in report.images]).float() / 255
        conf, label = quality.confidences(judge, samples)
        sure = conf >= 0.9
        novel = (quality.nearest_distances(samples, train_x) >= p5).float().mean().item()
        drawn = [int((label == c).sum()) for c in range(10)]
        confident = [int(((label == c) & sure).sum()) for c in range(10)]
        share = sure.float().mean().item()
        eligible = share >= 0.8 and min(confident) > 0 and novel >= 0.95
        print(f"{str(checkpoint):36} confident {share:.1%} "
              f"classes {sum(c > 0 for c in confident)}/10 novel {novel:.1%} "
              f"min {min(confident)} eligible {'yes' if eligible else 'no'} | "
              + " ".join(f"{quality.CLASSES[c][:5]} {drawn[c]}/{confident[c]}"
                         for c in range(10)), flush=True)


if __name__ == "__main__":
    main()
