"""What writing an MP4 costs while walking, and whether memory grows with the steps.

1. Time: the same walk (`aegen.runs.walk_files`, the code behind `aegen walk`) with `--video`
   and without it (writing only the final grid), alternating, median of `--repeats`.
2. Memory: peak resident memory of a fresh process walking 30 steps vs 600 steps with `--video`.

    python benchmarks/video_overhead.py [--width 32 --depth 3 --size 32 --steps 100 --no-memory]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEAK = """
import resource, sys
from aegen.runs import Outputs, walk_files
walk_files(sys.argv[1], Outputs(video=sys.argv[2], force=True), steps=int(sys.argv[3]),
           n=int(sys.argv[4]), seed=0, start_steps=1, device="cpu")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="skip the 30 vs 600 steps run")
    args = parser.parse_args()

    import torch

    from aegen.checkpoint import save_checkpoint
    from aegen.models import build_model, resolve_config
    from aegen.runs import Outputs, walk_files

    work = Path(tempfile.mkdtemp(prefix="aegen-video-bench-"))
    config = resolve_config("unet", {"width": args.width, "depth": args.depth}, 3, args.size)
    torch.manual_seed(0)
    checkpoint = save_checkpoint(
        work / "model.safetensors", build_model("unet", config), architecture="unet", config=config
    )

    def walk(outputs: Outputs) -> float:
        start = time.perf_counter()
        walk_files(
            checkpoint, outputs, steps=args.steps, n=args.n, seed=0, start_steps=1, device="cpu"
        )
        return time.perf_counter() - start

    with_video = lambda: walk(Outputs(video=work / "w.mp4", force=True))  # noqa: E731
    without = lambda: walk(Outputs(grid=str(work / "w.png"), force=True))  # noqa: E731
    with_video(), without()  # warm-up
    times: dict[str, list[float]] = {"video": [], "plain": []}
    for i in range(args.repeats):
        runs = [("video", with_video), ("plain", without)]
        for name, run in runs if i % 2 == 0 else runs[::-1]:
            times[name].append(run())
    video_s, plain_s = statistics.median(times["video"]), statistics.median(times["plain"])

    def peak(steps: int) -> int:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                PEAK,
                str(checkpoint),
                str(work / f"{steps}.mp4"),
                str(steps),
                str(args.n),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(out.stdout.strip()) * 1024

    print(
        f"walk: unet width={args.width} depth={args.depth}, {args.n} x 3x{args.size}x"
        f"{args.size}, {args.steps} steps, cpu, median of {args.repeats}"
    )
    print(f"without video: {plain_s:.3f} s   with --video: {video_s:.3f} s")
    print(f"time ratio video / plain: {video_s / plain_s:.4f}")
    if args.no_memory:
        return
    short, long = peak(30), peak(600)
    print(f"peak memory, 30 steps: {short / 2**20:.0f} MiB   600 steps: {long / 2**20:.0f} MiB")
    print(f"memory ratio 600 / 30 steps: {long / short:.4f}")


if __name__ == "__main__":
    main()
