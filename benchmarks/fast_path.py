"""`--precision auto` against fp32 NCHW: for each model and batch size, the time of aegen's
sampling with what `auto` picks on this machine, with `--precision fp32 --contiguous` (the seed's
way, through aegen), and with a bare PyTorch loop of the same maths, from one run.

Models: the shipped default model (grey 32x32) and a U-Net of the seed's width (width 64, depth
4, RGB 64x64): trained if --seed-checkpoint is given, else freshly initialised (speed does not
depend on weights; `auto`'s bf16 check does). Batch sizes: 4, 16 and 64 images (`aegen
generate --n N`; its default is 16). `auto` measures afresh here (an empty measurement cache);
the seconds its probe took are printed apart from the sampling times. Times are medians of
--repeats runs in alternating order. With --all, also every precision and memory format by
name, and --compile. Last, one training step (Adam on MSE) under `train`'s auto against fp32
NCHW eager.

    python benchmarks/fast_path.py [--steps 10] [--repeats 3] [--sizes 4,16,64] [--all]
        [--no-seed-model] [--seed-checkpoint flowers64.safetensors]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch


def bare_loop(model, shape, n, steps, mu=0.7, sigma=0.2):
    """The seed's sampler: fp32, NCHW, eager, no aegen."""
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        a = torch.randn((n, *shape), generator=g) * sigma + mu
        for step in range(steps):
            out = model(a)
            c = step / steps
            a = c * out + (1 - c) * (torch.randn((n, *shape), generator=g) * sigma + mu)
    return out


def aegen_generate(model, shape, n, steps):
    from aegen.sampling import generate

    return generate(model, shape=shape, n=n, steps=steps, seed=0, device="cpu").images


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def training_step_time(model_fn, shape, batch, fast, steps=6) -> float:
    """Median time of one Adam step on MSE under `fast` (None: fp32 NCHW eager)."""
    from aegen.precision import accelerate

    model = model_fn()
    runner = model if fast is None else accelerate(model, fast)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand((batch, *shape), generator=torch.Generator().manual_seed(0))
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        loss = torch.nn.functional.mse_loss(runner(x), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_line() -> str:
    from aegen.hardware import cpu

    here = cpu()
    return (f"CPU: {here.name} ({here.machine}; flags: {', '.join(here.notable) or 'none'}; "
            f"native bf16: {'yes' if here.native_bf16()[0] else 'no'}), "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="4,16,64", help="batch sizes (images per run)")
    parser.add_argument("--all", action="store_true", help="every setting by name, compile too")
    parser.add_argument("--no-seed-model", action="store_true")
    parser.add_argument("--seed-checkpoint", default=None,
                        help="a trained width-64 depth-4 RGB 64x64 U-Net")
    args = parser.parse_args()
    os.environ["AEGEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="aegen-bench-cache-")

    from aegen.checkpoint import load_checkpoint
    from aegen.defaults import default_checkpoint
    from aegen.models import build_model, resolve_config
    from aegen.precision import accelerate, auto_training_path, choose, prepare

    def default_model():
        return load_checkpoint(default_checkpoint()).model.train()

    def seed_model():
        if args.seed_checkpoint:
            return load_checkpoint(args.seed_checkpoint).model.train()
        torch.manual_seed(0)
        return build_model("unet", resolve_config("unet", {"width": 64, "depth": 4}, 3, 64))

    models = [("default model, 1x32x32", default_model, (1, 32, 32))]
    if not args.no_seed_model:
        state = "trained" if args.seed_checkpoint else "untrained"
        models.append((f"seed-width U-Net ({state}), 3x64x64", seed_model, (3, 64, 64)))
    sizes = [int(v) for v in args.sizes.split(",")]
    named = []
    if args.all:
        named = [("fp32", False, True), ("bf16", False, True), ("fp16", False, True),
                 ("fp32", True, True), ("bf16", True, True)]
    print(cpu_line())
    print(f"{args.steps} steps per run; medians of {args.repeats} runs; ratio = fp32 NCHW / "
          "setting (above 1: faster than fp32 NCHW)")
    for title, make, shape in models:
        for n in sizes:
            base_model = make()
            runs = {"bare loop, fp32 NCHW eager":
                    lambda m=base_model, s=shape, k=n: bare_loop(m, s, k, args.steps)}
            fp32_model = accelerate(make(), choose("fp32", "cpu", channels_last=False))
            runs["aegen --precision fp32 --contiguous"] = (
                lambda w=fp32_model, s=shape, k=n: aegen_generate(w, s, k, args.steps))
            began = time.perf_counter()
            auto_model, auto = prepare(make(), "cpu", "auto", shape=shape, batch_size=n)
            probe_s = time.perf_counter() - began
            label = f"{auto.precision} {'channels-last' if auto.channels_last else 'NCHW'}"
            runs[f"aegen auto ({label})"] = (
                lambda w=auto_model, s=shape, k=n: aegen_generate(w, s, k, args.steps))
            compile_s = {}
            for precision, compiled, channels_last in named:
                fast = choose(precision, "cpu", compile=compiled, channels_last=channels_last)
                wrapped = accelerate(make(), fast)
                name = f"aegen {precision} channels-last" + (" +compile" if compiled else "")
                began = time.perf_counter()
                aegen_generate(wrapped, shape, 2, 1)
                compile_s[name] = time.perf_counter() - began
                runs[name] = lambda w=wrapped, s=shape, k=n: aegen_generate(w, s, k, args.steps)
            for fn in runs.values():
                fn()  # warm-up (and compilation)
            times: dict[str, list[float]] = {name: [] for name in runs}
            for i in range(args.repeats):
                order = list(runs.items())
                for name, fn in order if i % 2 == 0 else order[::-1]:
                    times[name].append(timed(fn))
            base = statistics.median(times["aegen --precision fp32 --contiguous"])
            print(f"\n{title}, {n} images: auto's probe {probe_s:.2f} s (once per machine, "
                  f"model and batch size); {auto.reason}")
            print(f"{'setting':44} {'s/run':>7} {'ratio':>7}")
            for name, values in times.items():
                median = statistics.median(values)
                extra = f"  (first call {compile_s[name]:.1f} s)" if "compile" in name else ""
                print(f"{name:44} {median:>7.3f} {base / median:>6.2f}x{extra}")
        n = 16
        fast = auto_training_path(make, "cpu", shape=shape, batch=n)
        fp32_train = training_step_time(make, shape, n, None)
        auto_train = training_step_time(make, shape, n, fast)
        same = fast.precision == "fp32" and not fast.channels_last
        print(f"\n{title}, training step at batch {n} ({fast.reason})\n  fp32 NCHW eager "
              f"{fp32_train * 1e3:.0f} ms, auto {auto_train * 1e3:.0f} ms: "
              f"{fp32_train / auto_train:.2f}x"
              + ("  (the same way twice: the difference is noise)" if same else ""))


if __name__ == "__main__":
    main()
