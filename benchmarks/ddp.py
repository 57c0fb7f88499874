"""Training throughput with one process against two under torchrun (gloo, CPU), as a ratio.

The same `aegen train` command (U-Net width 16, depth 3, 32x32, batch 16 per process, copy
objective) runs on --data DIR (default: shared/data/flowers17/train in the folder holding this
repository, 720 Oxford 17 Category Flower photographs):
- 1 process with 2 torch threads (OMP_NUM_THREADS=2): all of a 2-core machine in one process;
- 1 process with 1 thread, for reference;
- 2 processes under torchrun with 1 thread each (OMP_NUM_THREADS=1): the same 2 cores.
Throughput is images trained per second of the training loop (the `seconds` of `--json`: every
epoch, checkpoint writes included; start-up and data loading excluded). The runs alternate and
the median of --repeats is used; the load average is printed, since other work on the machine
distorts the figures. With data parallelism each process takes 16 images per step,
so the two-process run takes half the steps per epoch at a global batch of 32.

    python benchmarks/ddp.py [--data DIR] [--epochs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

FLOWERS = Path(__file__).resolve().parents[2] / "shared" / "data" / "flowers17" / "train"
SETUP = ["--set", "width=16", "--set", "depth=3", "--size", "32", "--batch-size", "16"]


def aegen() -> str:
    beside = Path(sys.executable).parent / "aegen"
    if not beside.exists():
        sys.exit("the aegen console script is not beside this Python; pip install -e . first")
    return str(beside)


def run(data: Path, epochs: int, processes: int, threads: int, out: Path) -> float:
    """Images per second of one training run."""
    args = [
        aegen(),
        "train",
        str(data),
        *SETUP,
        "--epochs",
        str(epochs),
        "--seed",
        "0",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--force",
        "--json",
        "-q",
    ]
    if processes > 1:
        args = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(processes),
            *args,
        ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.exit(f"training failed:\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    per_epoch = report["images"] // (16 * processes) * 16 * processes
    return per_epoch * epochs / report["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    setups = {
        "1 process x 2 threads": (1, 2),
        "1 process x 1 thread": (1, 1),
        "2 processes x 1 thread": (2, 1),
    }
    rates: dict[str, list[float]] = {name: [] for name in setups}
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, (processes, threads) in setups.items():
                rates[name].append(
                    run(args.data, args.epochs, processes, threads, Path(tmp) / "model.safetensors")
                )
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"data {args.data}, {args.epochs} epochs, {args.repeats} repeats, {os.cpu_count()} CPUs")
    # Other work on the machine distorts these figures (threads wait for a descheduled peer).
    print(f"load average (1 min) before {before:.2f}, after {os.getloadavg()[0]:.2f}")
    for name, value in median.items():
        shown = ", ".join(f"{v:.1f}" for v in rates[name])
        print(f"{name:<24} {value:8.1f} images/s  (runs: {shown})")
    base = median["1 process x 2 threads"]
    print(
        f"ratio 2 processes / 1 process (same 2 cores): "
        f"{median['2 processes x 1 thread'] / base:.2f}"
    )
    print(
        f"ratio 2 processes / 1 process x 1 thread:     "
        f"{median['2 processes x 1 thread'] / median['1 process x 1 thread']:.2f}"
    )


if __name__ == "__main__":
    main()
