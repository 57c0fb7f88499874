"""Peak resident memory of `aegen train` against the size of the data set.

Makes two folders of 64x64 JPEGs (random crops of flowers17's photos where ../shared/data has
them, else made-up photographs), by default 10,000 and 100,000 images, then runs the real
`aegen train` on each: the first run decodes into the decoded cache (cold), the second reads
it (warm), and, for contrast, one run with --no-cache (everything in memory). Each run is
polled every 20 ms: the peak resident set of aegen's own process (VmHWM) and of aegen with its
decoding workers together. Prints each peak and the ratio of the large set's to the small's.

    python benchmarks/data_memory.py --work /tmp/datamem            # about 10 minutes
    python benchmarks/data_memory.py --work /tmp/datamem --counts 2000,20000 --no-memory-run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "flowers17" / "train"
TRAIN = ["--arch", "unet", "--set", "width=4", "--set", "depth=2", "--size", "64",
         "--epochs", "1", "--batch-size", "64", "--seed", "0", "--precision", "fp32",
         "--lr", "1e-3", "-q", "--json"]


def make_folder(folder: Path, count: int, seed: int = 0) -> Path:
    """`count` 64x64 JPEGs, 1,000 to a subfolder; kept between runs (a marker says it is
    whole)."""
    done = folder / ".complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(seed)
    photos = sorted(SHARED.rglob("*.jpg")) if SHARED.exists() else []
    sources = [Image.open(p).convert("RGB") for p in photos[:200]]
    started = time.perf_counter()
    for i in range(count):
        if sources:
            img = sources[int(rng.integers(len(sources)))]
            side = int(rng.integers(64, min(img.size) + 1))
            x, y = (int(rng.integers(0, n - side + 1)) for n in img.size)
            crop = img.crop((x, y, x + side, y + side)).resize((64, 64), Image.BILINEAR)
        else:
            base = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
            crop = Image.fromarray(base).resize((64, 64), Image.BICUBIC)
        sub = folder / f"{i // 1000:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        crop.save(sub / f"{i:06d}.jpg", quality=90)
    done.write_text(f"{count} images in {time.perf_counter() - started:.0f} s\n")
    return folder


def status_kib(pid: int, field: str) -> int:
    """A field of /proc/PID/status in KiB (VmRSS: resident now; VmHWM: its peak), 0 if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found += map(int, children)
        todo += map(int, children)
    return found


def measured_run(folder: Path, out: Path, env: dict, extra: list[str]) -> dict:
    """Run `aegen train` on `folder`, polling memory; its JSON result and the peaks."""
    command = [shutil.which("aegen") or "aegen", "train", str(folder), *TRAIN,
               "--out", str(out), "--force", *extra]
    started = time.perf_counter()
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           text=True)
    own = tree = 0
    while run.poll() is None:
        own = max(own, status_kib(run.pid, "VmHWM"))
        tree = max(tree, sum(status_kib(p, "VmRSS") for p in [run.pid, *descendants(run.pid)]))
        time.sleep(0.02)
    stdout, stderr = run.communicate()
    if run.returncode != 0:
        sys.exit(f"aegen train failed:\n{stderr}")
    result = json.loads(stdout)
    return {"own_mib": own / 1024, "tree_mib": max(tree, own) / 1024,
            "seconds": time.perf_counter() - started, "state": result["data_cache"]["state"],
            "images": result["images"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "datamem")
    parser.add_argument("--counts", default="10000,100000")
    parser.add_argument("--no-memory-run", action="store_true",
                        help="skip the --no-cache runs (everything in memory)")
    args = parser.parse_args()
    counts = [int(n) for n in args.counts.split(",")]
    # one torch thread: the figures are memory, and OpenMP threads that wait for each other on a
    # busy machine make steps far slower without changing what is resident
    env = {**os.environ, "AEGEN_CACHE_DIR": str(args.work / "cache"), "OMP_NUM_THREADS": "1"}
    shutil.rmtree(args.work / "cache", ignore_errors=True)  # the first run must decode
    rows = {}
    for count in counts:
        folder = make_folder(args.work / f"images-{count}", count)
        out = args.work / f"model-{count}.safetensors"
        rows[count] = {"cold": measured_run(folder, out, env, []),
                       "warm": measured_run(folder, out, env, [])}
        if not args.no_memory_run:
            rows[count]["memory"] = measured_run(folder, out, env, ["--no-cache"])
        for kind, row in rows[count].items():
            print(f"{count:>7} images  {kind:<6} ({row['state']:<5})  peak RSS aegen "
                  f"{row['own_mib']:7.0f} MiB, with workers {row['tree_mib']:7.0f} MiB  "
                  f"({row['seconds']:.0f} s)", flush=True)
    small, large = counts[0], counts[-1]
    for kind in rows[small]:
        own = rows[large][kind]["own_mib"] / rows[small][kind]["own_mib"]
        tree = rows[large][kind]["tree_mib"] / rows[small][kind]["tree_mib"]
        print(f"{kind:<6} peak RSS {large} / {small} images: aegen {own:.2f}x, with workers "
              f"{tree:.2f}x")
    (args.work / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
