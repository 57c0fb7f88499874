"""Plain copying (the seed) vs corruption-matched denoising: the same U-Net trained both ways.

For each dataset (Fashion-MNIST, and flowers17: Oxford 17 Category Flower photographs split into
train/ and test/, given with --flowers DIR; both at
32x32) the same architecture is trained with `--objective copy` and `--objective denoise` for the
same number of epochs (the same work: the corruption costs well under 1% of a training step; both
wall times are printed).
Each model then gets, measured the same way:
- its final training loss (MSE to the clean image, on its own objective's inputs);
- 256 samples from `aegen generate`'s defaults (schedule sampler, 100 steps, seeds 0..255), and
  for Fashion-MNIST the share the quality benchmark's judge labels with confidence >= 0.9, and
  how many of the 10 classes those cover;
- each sample's nearest training image (pixel L2): the median distance, and the share no closer
  than the 5th percentile of test-to-train distances ("novel");
- the denoise share: test images whose output is closer to the clean image than the gaussian
  alpha 0.5 corruption was (as `aegen denoise --alpha 0.5`).
Sample grids go to --grids (docs/images by default).

    apt-get install dataset-fashion-mnist
    python benchmarks/objectives.py [--judge judge-bn.pt] [--fashion-epochs 2]
        [--flowers-epochs 40] [--width 16] [--depth 3] [--grids docs/images]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from quality import (  # noqa: E402  (the quality benchmark's judge and data)
    FASHION,
    JUDGES,
    confidences,
    load_judge,
    load_split,
    nearest_distances,
)

FLOWERS = Path(__file__).resolve().parents[2] / "shared" / "data" / "flowers17"
SIZE = 32


def folder_images(folder: Path) -> torch.Tensor:
    from aegen.data import load_data

    return load_data(folder, SIZE, 3).images.float() / 255


def samples_of(checkpoint: Path, grid: Path, n: int, mode: str) -> tuple[torch.Tensor, Any]:
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    from aegen.outputs import Outputs
    from aegen.tasks import generate_files

    with tempfile.TemporaryDirectory() as folder:
        report = generate_files(checkpoint, Outputs(out_dir=Path(folder)), n=n, seed=0,
                                device="cpu")
        images = torch.stack([pil_to_tensor(Image.open(i.path).convert(mode))
                              for i in report.images])
    from aegen.media import save_grid

    save_grid(images[:64].float() / 255, grid, 8)
    return images.float() / 255, report


def denoise_share(checkpoint: Path, clean: torch.Tensor) -> float:
    from aegen.checkpoint import load_checkpoint
    from aegen.denoising import Corruption, measure_denoising

    model = load_checkpoint(checkpoint).model
    (result,) = measure_denoising(model, clean, [Corruption("gaussian", alpha=0.5)], seed=0,
                                  batch_size=16)
    return sum(result.closer) / len(result.closer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judge", type=Path, default=None,
                        help="the quality benchmark's classifier cache (trained if missing)")
    parser.add_argument("--classifier", choices=JUDGES, default="batchnorm",
                        help="the quality benchmark's judge: batchnorm (of record) or plain")
    parser.add_argument("--classifier-epochs", type=int, default=None)
    parser.add_argument("--fashion-epochs", type=int, default=2)
    parser.add_argument("--flowers-epochs", type=int, default=40)
    parser.add_argument("--flowers", type=Path, default=FLOWERS,
                        help="the flowers17 folder (train/ and test/ inside)")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--grids", type=Path, default=Path("docs/images"))
    parser.add_argument("--work", type=Path, default=None, help="keep the checkpoints here")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse finished checkpoints in --work (same settings assumed)")
    args = parser.parse_args()

    from aegen.training import train

    work = args.work or Path(tempfile.mkdtemp(prefix="aegen-objectives-"))
    work.mkdir(parents=True, exist_ok=True)
    args.grids.mkdir(parents=True, exist_ok=True)
    train_x, train_y = load_split("train", SIZE)
    test_x, _ = load_split("t10k", SIZE)
    judge = load_judge(args.judge, train_x, train_y, args.classifier_epochs, args.classifier)
    datasets = {
        "fashion": (FASHION / "train-images-idx3-ubyte.gz", args.fashion_epochs, 64,
                    train_x, test_x),
        "flowers17": (args.flowers / "train", args.flowers_epochs, 16,
                      folder_images(args.flowers / "train"), folder_images(args.flowers / "test")),
    }
    rows = []
    for dataset, (data, epochs, batch, train_set, test_set) in datasets.items():
        p5 = torch.quantile(nearest_distances(test_set[:1000], train_set), 0.05).item()
        for objective in ("copy", "denoise"):
            checkpoint = work / f"{dataset}-{objective}.safetensors"
            timing = checkpoint.with_suffix(".json")
            if args.reuse and timing.exists():  # a finished run of the same settings
                seconds, loss = json.loads(timing.read_text())
            else:
                began = time.perf_counter()
                result = train(data, checkpoint, architecture="unet",
                               config={"width": args.width, "depth": args.depth}, size=SIZE,
                               epochs=epochs, batch_size=batch, lr=1e-3, seed=0, device="cpu",
                               objective=objective, force=True)
                seconds, loss = time.perf_counter() - began, result.final_loss
                timing.write_text(json.dumps([seconds, loss]))
            grid = args.grids / f"objectives-{dataset}-{objective}.png"
            mode = "L" if train_set.shape[1] == 1 else "RGB"
            samples, _ = samples_of(checkpoint, grid, args.samples, mode)
            near = nearest_distances(samples, train_set)
            row = {
                "dataset": dataset, "objective": objective, "epochs": epochs,
                "seconds": seconds, "loss": loss,
                "near_median": near.median().item(), "novel": (near >= p5).float().mean().item(),
                "denoise": denoise_share(checkpoint, test_set[:1000]), "grid": grid,
                "confident": None, "classes": None,
            }
            if dataset == "fashion":
                conf, label = confidences(judge, samples)
                row["confident"] = (conf >= 0.9).float().mean().item()
                row["classes"] = len(set(label[conf >= 0.9].tolist()))
            rows.append(row)
            print(f"  {dataset} {objective}: {epochs} epochs in {seconds:.0f} s, "
                  f"loss {loss:.5f}", flush=True)
        print(f"{dataset}: 5th percentile of test-to-train nearest distances {p5:.3f}")

    print(f"\nunet width={args.width} depth={args.depth}, {SIZE}x{SIZE}, Adam 1e-3, seed 0; "
          f"{args.samples} samples, schedule sampler defaults")
    print(f"{'dataset':10} {'objective':9} {'epochs':>6} {'train s':>8} {'loss':>8} "
          f"{'conf>=0.9':>9} {'classes':>7} {'near med':>8} {'novel':>6} {'denoise':>7}")
    for r in rows:
        conf = f"{r['confident']:.1%}" if r["confident"] is not None else "-"
        classes = f"{r['classes']}/10" if r["classes"] is not None else "-"
        print(f"{r['dataset']:10} {r['objective']:9} {r['epochs']:>6} {r['seconds']:>8.0f} "
              f"{r['loss']:>8.5f} {conf:>9} {classes:>7} {r['near_median']:>8.3f} "
              f"{r['novel']:>6.1%} {r['denoise']:>7.1%}")
    print("grids: " + ", ".join(str(r["grid"]) for r in rows))


if __name__ == "__main__":
    main()
