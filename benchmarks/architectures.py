"""Forward time and peak memory of every architecture, at 32x32 and 64x64 RGB.

Each (architecture, size) runs in a fresh subprocess of this script, so peak memory is its own:
on the CPU the growth of peak resident memory over the resident memory before the model was
built (weights + activations); on CUDA torch.cuda.max_memory_allocated. Time is the median of
`--repeats` forward passes of a batch of 16 in sampling mode (inference, batch statistics),
printed relative to `unet` at the same size.

    python benchmarks/architectures.py [--device cpu] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

CASES = [
    ("unet", {}),
    ("unet-wide", {}),
    ("unet-deep", {}),
    ("unet-deep-wide", {}),
    ("unet-hidden", {}),
    ("mlp", {}),
    ("attention-unet", {}),
    ("attention", {"kind": "linear"}),
    ("attention", {"kind": "dot"}),
    ("attention", {"kind": "dot", "convs": False}),
]


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def measure(arch: str, config: dict, size: int, device: str, repeats: int) -> dict:
    """Runs in the child process."""
    import torch

    from aegen.errors import ConfigError
    from aegen.models import batch_statistics, build_model, resolve_config

    dev = torch.device(device)
    before = rss_bytes()
    try:
        model = build_model(arch, resolve_config(arch, config, 3, size)).to(dev)
    except ConfigError as exc:
        return {"refused": str(exc)}
    x = torch.rand(16, 3, size, size, device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    with torch.inference_mode(), batch_statistics(model):
        model(x)  # warm-up
        for _ in range(repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    params = sum(p.numel() for p in model.parameters())
    return {"seconds": statistics.median(times), "peak_bytes": peak, "parameters": params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        arch, config, size = json.loads(args.one)
        print(json.dumps(measure(arch, config, size, args.device, args.repeats)))
        return
    rows = []
    for size in (32, 64):
        for arch, config in CASES:
            one = json.dumps([arch, config, size])
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    one,
                    "--device",
                    args.device,
                    "--repeats",
                    str(args.repeats),
                ],
                capture_output=True,
                text=True,
            )
            result = (
                json.loads(child.stdout)
                if child.returncode == 0
                else {"refused": child.stderr.strip().splitlines()[-1]}
            )
            name = arch + "".join(f" {k}={str(v).lower()}" for k, v in config.items())
            rows.append((name, size, result))
    print(f"batch of 16 RGB images, forward pass, {args.device}, median of {args.repeats}")
    print(f"{'architecture':34} {'size':>5} {'params':>13} {'time/unet':>10} {'peak MiB':>9}")
    for name, size, result in rows:
        if "refused" in result:
            print(f"{name:34} {size:>5}  refused: {result['refused'][:60]}")
            continue
        unet = next(r for n, s, r in rows if n == "unet" and s == size)
        ratio = result["seconds"] / unet["seconds"]
        print(
            f"{name:34} {size:>5} {result['parameters']:>13,} {ratio:>10.2f} "
            f"{result['peak_bytes'] / 2**20:>9.0f}"
        )
    for size in (32, 64):
        unet = next(r for n, s, r in rows if n == "unet" and s == size)
        print(f"unet at {size}x{size}: {unet['seconds'] * 1000:.0f} ms per batch of 16")


if __name__ == "__main__":
    main()
