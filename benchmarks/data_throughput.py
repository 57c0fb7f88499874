"""Does data ever starve the model? Images per second the loader delivers against images per
second a training step consumes.

- cold: a folder of 224x224 JPEGs (random crops of flowers17's photos where ../shared/data has
  them, else made-up ones) decoded into an empty decoded cache, by 1 worker and by the default
  number (the CPUs, up to 8): what the first run over a folder pays;
- warm: batches read from that cache as `aegen train` reads them (random indices of the
  epoch's order, with --flip's mirroring and the conversion to floats);
- training: optimizer steps of the default architecture (`unet` at its defaults, 31 M
  parameters) at batch 16 (the default) on this CPU in fp32, at 32x32 and 64x64.

    python benchmarks/data_throughput.py                 # about 3 minutes on 2 cores
    python benchmarks/data_throughput.py --images 4000 --sizes 32,64,128
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "flowers17" / "train"


def make_photos(folder: Path, count: int, seed: int = 0) -> Path:
    """`count` 224x224 JPEGs; kept between runs (a marker says the folder is whole)."""
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    photos = sorted(SHARED.rglob("*.jpg")) if SHARED.exists() else []
    sources = [Image.open(p).convert("RGB") for p in photos[:100]]
    for i in range(count):
        if sources:
            img = sources[int(rng.integers(len(sources)))]
            side = int(rng.integers(160, min(img.size) + 1))
            x, y = (int(rng.integers(0, n - side + 1)) for n in img.size)
            img = img.crop((x, y, x + side, y + side)).resize((224, 224), Image.BILINEAR)
        else:
            grid = rng.uniform(0, 255, (6, 6, 3)).astype(np.uint8)
            img = Image.fromarray(grid).resize((224, 224), Image.BICUBIC)
        img.save(folder / f"{i:05d}.jpg", quality=90)
    (folder / ".complete").write_text("")
    return folder


def cold_rate(folder: Path, size: int, workers: int | None) -> tuple[float, object]:
    """Images a second decoded into an empty decoded cache; and the images read back."""
    from aegen.trainingdata import read_training_data

    cache = Path(os.environ["AEGEN_CACHE_DIR"]) / "data"
    shutil.rmtree(cache, ignore_errors=True)
    started = time.perf_counter()
    found = read_training_data(folder, size, workers=workers)
    return len(found.paths) / (time.perf_counter() - started), found.images


def warm_rate(images, batch: int, seconds: float = 3.0) -> float:
    """Images a second read from the cache as training reads them."""
    from aegen.fitting import epoch_shard, flips_of_epoch

    order = epoch_shard(len(images), batch, seed=0, epoch=0)
    flips = flips_of_epoch(0, 0, len(order))
    done, started, b = 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        start = (b * batch) % (len(order) - batch + 1)
        index = order[start : start + batch]
        pixels = images[index]
        mirror = flips[start : start + batch].view(-1, 1, 1, 1)
        pixels = torch.where(mirror, pixels.flip(-1), pixels).float().div_(255)
        done, b = done + len(index), b + 1
    return done / (time.perf_counter() - started)


def training_rate(size: int, batch: int, steps: int = 6) -> float:
    """Images a second an fp32 training step of the default architecture consumes."""
    from aegen.models import build_model, resolve_config
    from aegen.settings import TRAIN_DEFAULTS

    arch = TRAIN_DEFAULTS["architecture"]
    model = build_model(arch, resolve_config(arch, {}, 3, size))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    clean = torch.rand(batch, 3, size, size)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        loss = torch.nn.functional.mse_loss(model(clean), clean)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return batch / float(np.median(times[1:]))


def cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), "unknown CPU")
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in text]
    return f"{model} ({', '.join(flags) or 'no avx2'}), {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "datarate")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--sizes", default="32,64")
    parser.add_argument("--batch", type=int, default=16, help="aegen train's default batch")
    args = parser.parse_args()
    os.environ["AEGEN_CACHE_DIR"] = str(args.work / "cache")
    from aegen.decoding import default_workers

    folder = make_photos(args.work / "photos", args.images)
    print(f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.images} JPEGs of 224x224; batch {args.batch}", flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        one, _ = cold_rate(folder, size, workers=1)
        many, images = cold_rate(folder, size, workers=None)
        warm = warm_rate(images, args.batch)
        train = training_rate(size, args.batch)
        print(f"{size}x{size}: training step {train:8.1f} img/s | warm cache {warm:9.0f} img/s "
              f"= {warm / train:6.0f}x | cold folder, 1 worker {one:6.0f} img/s = "
              f"{one / train:5.1f}x, {default_workers()} workers {many:6.0f} img/s = "
              f"{many / train:5.1f}x", flush=True)


if __name__ == "__main__":
    main()
