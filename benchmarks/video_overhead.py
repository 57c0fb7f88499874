"""What writing an MP4 costs while walking, and whether memory grows with the steps.

1. Time: the same walk (`aegen.tasks.walk_files`, the code behind `aegen walk`) with `--video`
   and without it (writing only the final grid), run in back-to-back pairs (order alternating).
   The headline is the median of the per-pair ratios, with its quartiles: on a shared 2-core
   machine whole runs drift by 10-20%, and a pair shares one drift far more than two medians do.
   The encoder's own CPU time per frame (ffmpeg is a child process) is printed beside it.
2. Memory: peak resident memory of a fresh process walking 30 steps vs 600 steps with `--video`.

    python benchmarks/video_overhead.py [--width 32 --depth 3 --size 32 --steps 100 --no-memory]
        [--checkpoint PATH]   # a trained model instead of a freshly initialised U-Net
        [--precision fp32]    # aegen's --precision for both walks (default: auto)
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEAK = """
import resource, sys
from aegen.outputs import Outputs
from aegen.tasks import walk_files
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
    parser.add_argument("--repeats", type=int, default=15, help="pairs of runs")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--no-memory", action="store_true", help="skip the 30 vs 600 steps run")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    import torch

    from aegen.checkpoint import load_checkpoint, save_checkpoint
    from aegen.models import build_model, resolve_config
    from aegen.outputs import Outputs
    from aegen.tasks import walk_files

    work = Path(tempfile.mkdtemp(prefix="aegen-video-bench-"))
    if args.checkpoint is not None:
        checkpoint = args.checkpoint
        info = load_checkpoint(checkpoint).info
        model_name = (f"{checkpoint.name} ({info.architecture}), {args.n} x "
                      f"{info.channels}x{info.size}x{info.size}")
    else:
        config = resolve_config("unet", {"width": args.width, "depth": args.depth}, 3, args.size)
        torch.manual_seed(0)
        checkpoint = save_checkpoint(
            work / "model.safetensors", build_model("unet", config), architecture="unet",
            config=config,
        )
        model_name = (f"unet width={args.width} depth={args.depth}, {args.n} x 3x{args.size}x"
                      f"{args.size}")

    def walk(outputs: Outputs) -> float:
        start = time.perf_counter()
        report = walk_files(
            checkpoint, outputs, steps=args.steps, n=args.n, seed=0, start_steps=1, device="cpu",
            precision=args.precision,
        )
        fast_path.update(report.fast_path.as_json())
        return time.perf_counter() - start

    fast_path: dict = {}
    with_video = lambda: walk(Outputs(video=work / "w.mp4", force=True))  # noqa: E731
    without = lambda: walk(Outputs(grid=str(work / "w.png"), force=True))  # noqa: E731
    def encoder_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    with_video(), without()  # warm-up
    times: dict[str, list[float]] = {"video": [], "plain": []}
    encoder_s = 0.0
    for i in range(args.repeats):
        runs = [("video", with_video), ("plain", without)]
        for name, run in runs if i % 2 == 0 else runs[::-1]:
            before = encoder_cpu()
            times[name].append(run())
            encoder_s += encoder_cpu() - before
    video_s, plain_s = statistics.median(times["video"]), statistics.median(times["plain"])
    ratios = sorted(v / p for v, p in zip(times["video"], times["plain"]))
    q1, q2, q3 = statistics.quantiles(ratios, n=4)

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

    step_ms = plain_s / args.steps * 1e3
    frame_ms = encoder_s / (args.repeats * args.steps) * 1e3
    print(f"walk: {model_name}, {args.steps} steps, cpu, {args.repeats} pairs of runs, "
          f"--precision {args.precision} -> {fast_path['precision']}"
          f"{', channels-last' if fast_path['channels_last'] else ''}")
    print(f"without video: median {plain_s:.3f} s ({step_ms:.1f} ms a step)   "
          f"with --video: median {video_s:.3f} s")
    print(f"encoder (ffmpeg) CPU: {frame_ms:.2f} ms a frame, start-up included")
    print(f"per-pair ratios video / plain: {' '.join(f'{r:.3f}' for r in ratios)}")
    print(f"time ratio video / plain: median of pairs {q2:.4f} (quartiles {q1:.3f}-{q3:.3f}); "
          f"ratio of medians {video_s / plain_s:.4f}")
    if args.no_memory:
        return
    short, long = peak(30), peak(600)
    print(f"peak memory, 30 steps: {short / 2**20:.0f} MiB   600 steps: {long / 2**20:.0f} MiB")
    print(f"memory ratio 600 / 30 steps: {long / short:.4f}")


if __name__ == "__main__":
    main()
