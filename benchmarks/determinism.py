"""Why the same seed can give another picture on another machine, measured on one machine.

Runs `aegen generate` (the default model, 64 images, seed 0, its default 200 steps) in ways that
do the same maths and differ only in the order of the sums: fp32 NCHW, fp32 channels-last, and
fp32 NCHW on 1 thread (each run in its own process, so the thread count is set before torch
starts). For each pair it prints the largest difference of one forward pass, and the share of
pixels (of the 8-bit grid) and of whole images that differ after sampling. A rerun of the first
way is the control: it must differ in nothing.

    python benchmarks/determinism.py [--n 64] [--steps 200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

WAYS = {
    "fp32 NCHW, 2 threads": (["--precision", "fp32", "--contiguous"], "2"),
    "fp32 NCHW, 2 threads (rerun)": (["--precision", "fp32", "--contiguous"], "2"),
    "fp32 channels-last, 2 threads": (["--precision", "fp32", "--channels-last"], "2"),
    "fp32 NCHW, 1 thread": (["--precision", "fp32", "--contiguous"], "1"),
    "bf16 channels-last, 2 threads": (["--precision", "bf16", "--channels-last"], "2"),
}


def run(folder: Path, name: str, flags: list[str], threads: str, n: int, steps: int) -> Path:
    out = folder / (name.replace(" ", "_").replace(",", "") + ".png")
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    subprocess.run(
        [sys.executable, "-m", "aegen", "generate", "--n", str(n), "--steps", str(steps),
         "--seed", "0", "--out", str(out), "--out-dir", str(out.with_suffix("")), "-q",
         *flags],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )
    return out


def tiles(png: Path) -> np.ndarray:
    folder = png.with_suffix("")
    return np.stack([np.asarray(Image.open(p).convert("L")) for p in sorted(folder.iterdir())])


def forward_gap(flags: list[str]) -> float:
    """Largest per-pixel difference of one forward pass from fp32 NCHW on a fixed batch."""
    import torch

    from aegen.checkpoint import load_checkpoint
    from aegen.defaults import default_checkpoint
    from aegen.precision import accelerate, choose

    model = load_checkpoint(default_checkpoint()).model.eval()
    x = torch.rand((64, 1, 32, 32), generator=torch.Generator().manual_seed(0))
    precision = flags[1]
    fast = choose(precision, "cpu", channels_last="--channels-last" in flags)
    with torch.inference_mode():
        reference = model(x).clone()
        return (accelerate(model, fast)(x) - reference).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    from aegen.hardware import cpu

    here = cpu()
    print(f"CPU: {here.name} (flags: {', '.join(here.notable) or 'none'}; native bf16: "
          f"{'yes' if here.native_bf16()[0] else 'no'})")
    print(f"aegen generate --n {args.n} --steps {args.steps} --seed 0, each way in its own "
          "process; compared with the first way")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        outputs = {name: run(folder, name, flags, threads, args.n, args.steps)
                   for name, (flags, threads) in WAYS.items()}
        first = next(iter(outputs))
        base = tiles(outputs[first])
        print(f"{'way':34} {'one pass max|diff|':>19} {'pixels differ':>14} {'images differ':>14}")
        for name, png in outputs.items():
            other = tiles(png)
            pixels = (other != base).mean()
            images = (other != base).reshape(len(base), -1).any(axis=1).sum()
            gap = f"{forward_gap(WAYS[name][0]):.2e}" if WAYS[name][1] == "2" else "-"
            print(f"{name:34} {gap:>19} {pixels:>13.1%} {images:>8}/{len(base)}")


if __name__ == "__main__":
    main()
