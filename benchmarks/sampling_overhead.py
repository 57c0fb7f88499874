"""aegen's `schedule` sampling against a bare PyTorch loop doing the same computation.

Both run in this process on the same model: forward pass, fresh per-image seeded noise, and the
linear mixing a = c*g + d*noise, under inference mode with batch norm on batch statistics.
Runs alternate, and the ratio of medians is printed (1.00 = no overhead).

    python benchmarks/sampling_overhead.py [--width 32 --size 64 --n 8 --steps 20 --repeats 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from aegen.models import batch_statistics, build_model, resolve_config
from aegen.sampling import generate


def bare_loop(model, n, shape, steps, seed, mu=0.7, sigma=0.2):
    generators = [torch.Generator().manual_seed(seed + i) for i in range(n)]

    def noise():
        out = torch.empty((n, *shape))
        for row, g in zip(out, generators):
            row.normal_(mu, sigma, generator=g)
        return out

    with torch.inference_mode(), batch_statistics(model):
        a = noise()
        for step in range(steps):
            g = model(a)
            if step + 1 < steps:
                c = step / steps
                a = noise().mul_(1 - c).add_(g, alpha=c)
    return g


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    config = resolve_config("unet", {"width": args.width, "depth": args.depth}, 3, args.size)
    model = build_model("unet", config).to(device)
    shape = (3, args.size, args.size)

    def run_aegen():
        generate(
            model,
            "schedule",
            shape=shape,
            n=args.n,
            steps=args.steps,
            seed=0,
            options={"schedule": "linear"},
            device=device,
        )

    def run_bare():
        bare_loop(model, args.n, shape, args.steps, seed=0)

    def timed(fn):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    run_aegen(), run_bare()  # warm-up
    times = {"aegen": [], "bare": []}
    for i in range(args.repeats):
        order = [("aegen", run_aegen), ("bare", run_bare)]
        for name, fn in order if i % 2 == 0 else order[::-1]:
            times[name].append(timed(fn))
    aegen_s, bare_s = statistics.median(times["aegen"]), statistics.median(times["bare"])
    params = sum(p.numel() for p in model.parameters())
    print(
        f"model: unet width={args.width} depth={args.depth} ({params / 1e6:.1f} M params), "
        f"{args.n} x {shape}, {args.steps} steps, {device.type}, "
        f"{torch.get_num_threads()} threads, {args.repeats} repeats"
    )
    print(f"bare PyTorch loop: median {bare_s:.3f} s")
    print(f"aegen schedule:    median {aegen_s:.3f} s")
    ratio = aegen_s / bare_s
    best = min(times["aegen"]) / min(times["bare"])
    print(
        f"ratio aegen / bare: {ratio:.4f} of medians ({100 * (ratio - 1):+.2f}%), "
        f"{best:.4f} of best runs ({100 * (best - 1):+.2f}%)"
    )


if __name__ == "__main__":
    main()
