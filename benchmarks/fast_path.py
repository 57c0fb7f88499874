"""The fast path against the seed's loop: aegen's sampling at each precision / memory format /
compile setting, and one training step, each as a speed-up over plain fp32 NCHW eager PyTorch on
the same model.

Models: the shipped default model (grey 32x32, batch 64) and a U-Net of the seed's width
(width 64, depth 4, RGB 64x64, batch 16): trained if --seed-checkpoint is given, else freshly
initialised (speed does not depend on weights, but `auto`'s per-model check does: bf16 changes an
untrained U-Net's output by far more than its tolerance, so `auto` runs that one in fp32).
Sampling runs aegen's `generate` (the `schedule` sampler, batch statistics, inference mode) on the
model wrapped by `aegen.precision.accelerate`; the row "aegen default" is what `aegen generate`
does with no flags (`--precision auto`, its per-model check included). The baseline is a bare
loop of the same maths,
`a = c * model(a) + d * noise`, in fp32 NCHW eager. Times are medians of --repeats runs,
alternating; compilation time is excluded (printed separately). Also printed: the largest
per-pixel difference from fp32 of one forward pass on the same input (the tolerance of
aegen/precision.py), and the training speed-up of `--precision auto` over fp32 NCHW.

    python benchmarks/fast_path.py [--steps 20] [--repeats 5] [--no-compile] [--no-seed-model]
        [--seed-checkpoint flowers64.safetensors]   # a trained seed-width U-Net
"""

from __future__ import annotations

import argparse
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--no-seed-model", action="store_true")
    parser.add_argument("--seed-checkpoint", default=None,
                        help="a trained width-64 depth-4 RGB 64x64 U-Net")
    args = parser.parse_args()

    from aegen.checkpoint import load_checkpoint
    from aegen.defaults import default_checkpoint
    from aegen.models import build_model, resolve_config
    from aegen.precision import accelerate, choose, prepare

    def default_model():
        return load_checkpoint(default_checkpoint()).model.train()

    def seed_model():
        if args.seed_checkpoint:
            return load_checkpoint(args.seed_checkpoint).model.train()
        torch.manual_seed(0)
        return build_model("unet", resolve_config("unet", {"width": 64, "depth": 4}, 3, 64))

    models = [("default model, 1x32x32, batch 64", default_model, (1, 32, 32), 64)]
    if not args.no_seed_model:
        state = "trained" if args.seed_checkpoint else "untrained"
        models.append((f"seed-width U-Net ({state}), 3x64x64, batch 16", seed_model, (3, 64, 64),
                       16))
    settings = [("fp32", False), ("bf16", False), ("fp16", False)]
    if not args.no_compile:
        settings += [("fp32", True), ("bf16", True)]
    auto = choose("auto", "cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {auto.reason}")
    for title, make, shape, n in models:
        base_model = make()
        runs = {"bare fp32 NCHW eager":
                lambda m=base_model, s=shape, k=n: bare_loop(m, s, k, args.steps)}
        deviation, compile_s = {}, {}
        x = torch.rand((n, *shape), generator=torch.Generator().manual_seed(1)) * 0.4 + 0.5
        with torch.inference_mode():
            reference = base_model(x).clone()
        chosen_model, chosen = prepare(make(), "cpu", "auto", shape=shape)
        print(f"\n{title}: aegen default = {chosen.precision}"
              f"{', channels-last' if chosen.channels_last else ''} ({chosen.reason})")
        with torch.inference_mode():
            deviation["aegen default"] = (chosen_model(x) - reference).abs().max().item()
        runs["aegen default"] = lambda w=chosen_model, s=shape, k=n: aegen_generate(w, s, k,
                                                                                   args.steps)
        for precision, compiled in settings:
            model = make()
            fast = choose(precision, "cpu", compile=compiled)
            wrapped = accelerate(model, fast)
            name = f"aegen {precision}" + (" +compile" if compiled else "") + " channels-last"
            start = time.perf_counter()
            with torch.inference_mode():
                deviation[name] = (wrapped(x) - reference).abs().max().item()
            compile_s[name] = time.perf_counter() - start
            runs[name] = lambda w=wrapped, s=shape, k=n: aegen_generate(w, s, k, args.steps)
        for fn in runs.values():
            fn()  # warm-up (and compilation)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for i in range(args.repeats):
            order = list(runs.items())
            for name, fn in order if i % 2 == 0 else order[::-1]:
                times[name].append(timed(fn))
        base = statistics.median(times["bare fp32 NCHW eager"])
        print(f"{title}, {args.steps} steps, median of {args.repeats}")
        print(f"{'setting':38} {'s/run':>7} {'speed-up':>9} {'max |diff| vs fp32':>19}")
        for name, values in times.items():
            median = statistics.median(values)
            diff = f"{deviation[name]:.4f}" if name in deviation else "-"
            extra = f"  (first call {compile_s[name]:.1f} s)" if "compile" in name else ""
            print(f"{name:38} {median:>7.3f} {base / median:>8.2f}x {diff:>19}{extra}")
        fp32_train = training_step_time(make, shape, n, None)
        auto_train = training_step_time(make, shape, n, auto)
        print(f"training step, batch {n}: fp32 NCHW eager {fp32_train * 1e3:.0f} ms, "
              f"auto ({auto.precision}, channels-last) {auto_train * 1e3:.0f} ms: "
              f"{fp32_train / auto_train:.2f}x")


if __name__ == "__main__":
    main()
