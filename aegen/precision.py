"""The fast path: numeric precision, memory format and compilation, chosen per device.

Sampling is hundreds of forward passes, so it is only as fast as the forward pass. Three levers,
all measured in benchmarks/fast_path.py (docs/performance.md):
- precision: autocast to bf16 or fp16 for the model's own arithmetic; everything outside the
  model (noise, schedule mixing, metrics, files) stays fp32, and outputs come back as fp32;
- memory format: channels-last (NHWC) for image tensors, which oneDNN's convolutions prefer;
- compilation: torch.compile of forward, encode and decode.
`auto` measures: of fp32 NCHW (the article's way), fp32 channels-last and, where the hardware
computes bf16 natively (AVX512-BF16 or AMX on CPUs, compute capability 8.0+ on NVIDIA GPUs) and
the model stays within bf16's tolerance, bf16, it runs the one timed fastest for this model at
the run's batch size, and never one slower than fp32 NCHW. The measurement is remembered per
machine, model and batch size (aegen/cache.py), so later runs choose, and compute, the same.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from . import cache
from .errors import UsageError
from .hardware import cpu
from .models import sampling_mode
from .speedprobe import (
    CACHE_NAME,
    MARGIN,
    fastest,
    machine_fingerprint,
    model_fingerprint,
    time_rounds,
)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Largest per-pixel difference from fp32 on the same input (pixels in [0, 1]) that a faster
# setting may show in one forward pass; checked by tests and benchmarks/fast_path.py.
TOLERANCE = {"fp32": 1e-4, "bf16": 0.05, "fp16": 0.01}  # fp32: channels-last reorders sums


@dataclass(frozen=True)
class FastPath:
    """How a model runs on one device: precision, memory format, compilation, and why."""

    precision: str  # fp32 | bf16 | fp16
    channels_last: bool
    compile: bool
    device_type: str
    reason: str

    @property
    def dtype(self) -> Any:
        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
            self.precision
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "channels_last": self.channels_last,
            "compile": self.compile,
            "device": self.device_type,
            "reason": self.reason,
        }

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for the model's arithmetic; a no-op for fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def native_bf16(device_type: str) -> tuple[bool, str]:
    """Whether the device computes bf16 natively (so bf16 can be faster, not emulated), and
    why: on CPUs from the flags the operating system lists (aegen/hardware.py)."""
    if device_type == "cpu":

        return cpu().native_bf16()
    if device_type == "cuda":
        major, minor = torch.cuda.get_device_capability()
        name = torch.cuda.get_device_name()
        if major >= 8:
            return True, f"{name} (compute capability {major}.{minor}) has native bf16"
        return False, f"{name} (compute capability {major}.{minor}) lacks native bf16"
    return False, f"no bf16 fast path is known for {device_type}"


def supported(precision: str, device_type: str) -> tuple[bool, str]:
    """Whether `precision` can run on this device at all (emulated counts), and why not."""
    if precision == "fp32":
        return True, ""
    if device_type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            return False, "this GPU does not support bf16"
        return True, ""
    if device_type == "cpu":
        return True, ""  # oneDNN emulates bf16 and fp16 where the CPU lacks them
    return False, f"`precision` {precision} is not supported on {device_type}"


def choose(precision: str = "auto", device: Any = "cpu", compile: bool = False,
           channels_last: bool | None = None) -> FastPath:
    """Resolve `--precision` (and `--compile`) for a device; `auto` explains its choice.
    `channels_last` None picks the memory format that measured faster; True or False (the
    `--channels-last` / `--contiguous` flags) overrides it, e.g. to reproduce a run exactly."""
    if precision not in PRECISIONS:
        raise UsageError(f"`precision` must be one of {', '.join(PRECISIONS)}; got {precision!r}",
                         parameters=["precision"])
    device_type = torch.device(device).type
    if precision == "auto":
        fast, why = native_bf16(device_type)
        precision = "bf16" if fast else "fp32"
        reason = f"auto: {precision}, because {why}"
    else:
        ok, why = supported(precision, device_type)
        if not ok:
            raise UsageError(why, parameters=["precision"])
        reason = f"{precision}, as asked"
    # Channels-last measured faster for every U-Net on this project's CPUs, in fp32 and bf16
    # (docs/performance.md); on GPUs it pays with tensor cores, i.e. at reduced precision.
    if channels_last is None:
        channels_last = device_type == "cpu" or precision != "fp32"
    return FastPath(precision, channels_last, compile, device_type, reason)


def to_memory_format(x: Any, channels_last: bool) -> Any:
    """An image batch in channels-last layout when asked (anything else as it is)."""
    if channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _back_to_fp32(y: Any) -> Any:
    if isinstance(y, torch.Tensor):
        if y.is_floating_point() and y.dtype != torch.float32:
            y = y.float()
        return y.contiguous() if y.dim() == 4 else y
    return y


def accelerate(model: Any, fast: FastPath) -> Any:
    """Wrap a model so forward, encode and decode run on the fast path; inputs and outputs
    stay ordinary fp32 contiguous tensors, so samplers and metrics need not know."""
    if fast.precision == "fp32" and not fast.channels_last and not fast.compile:
        return model
    if fast.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return FastModel(model, fast)


def compiled(fn: Any) -> Any:
    """torch.compile, without the warning inductor's import prints about CUDA_HOME on
    machines with no CUDA runtime (it concerns C++ extensions, not aegen)."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    return torch.compile(fn)


class FastModel(torch.nn.Module):
    """The model, with its forward/encode/decode run through `FastPath`."""

    def __init__(self, inner: Any, fast: FastPath):
        super().__init__()
        self.inner = inner
        self.fast = fast
        run = compiled if fast.compile else (lambda f: f)
        self._forward = run(inner.forward)
        self._encode = run(inner.encode) if hasattr(inner, "encode") else None
        self._decode = run(inner.decode) if hasattr(inner, "decode") else None

    def _call(self, fn: Any, x: Any) -> Any:
        with self.fast.autocast():
            return _back_to_fp32(fn(to_memory_format(x, self.fast.channels_last)))

    def forward(self, x: Any) -> Any:
        return self._call(self._forward, x)

    def encode(self, x: Any) -> Any:
        return self._call(self._encode, x)

    def decode(self, h: Any) -> Any:
        return self._call(self._decode, h)


PROBE_BATCH = 16


def for_model(fast: FastPath, model: Any) -> FastPath:
    """`fast` without channels-last for a model with no 2-D convolutions (an MLP), where the
    layout would only add a copy."""
    if fast.channels_last and not any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        return dataclasses.replace(fast, channels_last=False)
    return fast


def deviation(model: Any, fast: FastPath, shape: tuple[int, int, int], device: Any,
              running_stats: bool = False, batch: int = PROBE_BATCH) -> float:
    """Largest per-pixel difference between `fast` and fp32 NCHW on one fixed probe batch
    (uniform pixels, batch statistics as in sampling): what `auto` checks per model."""

    x = torch.rand((batch, *shape), generator=torch.Generator().manual_seed(0)).to(device)
    plain = dataclasses.replace(fast, compile=False)
    convs = [p for p in model.parameters() if p.dim() == 4]
    layout = (torch.contiguous_format if all(p.is_contiguous() for p in convs)
              else torch.channels_last)
    # Layout changes happen outside inference mode, so the weights stay ordinary tensors.
    try:
        with torch.inference_mode(), sampling_mode(model, running_stats):
            reference = model(x).float()
        with torch.no_grad():
            wrapped = accelerate(model, plain)  # converts the layout in place
        with torch.inference_mode(), sampling_mode(model, running_stats):
            out = wrapped(x)
    finally:
        with torch.no_grad():
            model.to(memory_format=layout)
    return (out - reference).abs().max().item()


def _label(fast: FastPath) -> str:
    return f"{fast.precision} {'channels-last' if fast.channels_last else 'NCHW'}"


def _has_conv(model: Any) -> bool:
    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def _time_paths(model: Any, paths: list[FastPath], shape: tuple[int, int, int], device: Any,
                running_stats: bool, batch: int) -> list[float]:
    """Seconds per round of one forward pass at the run's batch shape for each path, each on its
    own copy of the model (layouts are converted in place), as sampling runs it."""

    x = torch.rand((batch, *shape), generator=torch.Generator().manual_seed(0)).to(device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    with contextlib.ExitStack() as stack:
        calls = []
        for path in paths:
            twin = copy.deepcopy(model)
            with torch.no_grad():
                wrapped = accelerate(twin, path)
            stack.enter_context(sampling_mode(twin, running_stats))
            calls.append(lambda wrapped=wrapped: wrapped(x))
        with torch.inference_mode():
            return time_rounds(calls, sync)


def measure_fastest(paths: list[FastPath], time_them: Any, key_fields: dict[str, Any],
                    agree: Any = None) -> tuple[FastPath, str]:
    """The fastest of `paths` (the first is the plain baseline), measured by `time_them(paths)`
    (each one's seconds per round; `speedprobe.fastest` decides) or recalled from an earlier
    measurement with the same `key_fields` on this machine; and the words that say so."""
    from datetime import date


    labels = [_label(p) for p in paths]
    key = cache.key_of({**key_fields, "ways": labels})
    entry = cache.recall(CACHE_NAME, key)
    if entry and entry.get("choice") in labels and isinstance(entry.get("times_ms"), dict):
        times_ms = entry["times_ms"]
        when = f"measured {entry.get('measured', 'earlier')}, kept in {cache.cache_dir()}"
    else:
        try:
            rounds = time_them(paths)
        except Exception as exc:  # a model that cannot be copied or run twice: the plain way
            return paths[0], f"not measured ({type(exc).__name__}: {exc})"
        times_ms = {label: round(1000 * min(r), 3) for label, r in zip(labels, rounds)}
        choice = labels[fastest(rounds)]
        if agree is not None:  # under torchrun: rank 0's choice, and only it is remembered
            choice, agree = agree(choice), None
        stored = cache.remember(CACHE_NAME, key, {
            "choice": choice, "times_ms": times_ms, "measured": date.today().isoformat(),
        })
        when = "measured now" + ("" if stored else " (the cache could not be written)")
        entry = {"choice": choice}
    if agree is not None:  # every rank calls it once, whether it measured or recalled
        entry = {**entry, "choice": agree(entry["choice"])}
    chosen = paths[labels.index(entry["choice"])]
    shown = ", ".join(f"{label} {times_ms.get(label, float('nan')):.2f} ms" for label in labels)
    quickest = min(labels, key=lambda label: times_ms.get(label, float("inf")))
    if quickest != entry["choice"]:  # the baseline kept: say why the lower figure lost
        return chosen, (f"kept: no other way was clearly faster here ({shown}, best rounds; "
                        f"another must be {MARGIN:.0%} faster and win 3 rounds of 4; {when})")
    return chosen, f"fastest here ({shown}; {when})"


def auto_path(model: Any, device: Any, *, shape: tuple[int, int, int], batch: int,
              running_stats: bool = False, exact: str | None = None,
              channels_last: bool | None = None, compile: bool = False,
              agree: Any = None) -> FastPath:
    """What `--precision auto` runs: of fp32 NCHW (the article's way), fp32 channels-last and, on
    hardware with native bf16 and for a model that stays within tolerance, bf16, the one
    measured fastest for this model at this batch size, never one slower than fp32 NCHW."""
    device_type = torch.device(device).type
    layouts = ([channels_last] if channels_last is not None
               else [False, True] if _has_conv(model) else [False])
    native, why = native_bf16(device_type)
    notes: list[str] = []
    paths = [FastPath("fp32", cl, False, device_type, "") for cl in layouts]
    if exact:
        notes.append(f"fp32 only, because {exact}")
    elif not native:
        notes.append(f"bf16 not tried: {why}")
    else:
        for cl in layouts:
            bf16 = FastPath("bf16", cl, False, device_type, "")
            try:
                gap = deviation(model, bf16, shape, device, running_stats, max(2, min(batch,
                                                                                    PROBE_BATCH)))
            except Exception as exc:  # e.g. a plugin's op with no kernel at this precision
                notes.append(f"bf16 not used: this model failed under it ({type(exc).__name__}: "
                             f"{exc})")
                break
            if gap > TOLERANCE["bf16"]:
                notes.append(f"bf16 not used: this model's output under bf16 differs from fp32 "
                             f"by up to {gap:.3f}, over the tolerance {TOLERANCE['bf16']}")
                break
            paths.append(bf16)
        if not notes:
            notes.append(f"{why}; this model stays within bf16's tolerance")
    if len(paths) == 1:
        chosen, how = paths[0], "the only way to try"
    else:

        key = {"machine": machine_fingerprint(device), "model": model_fingerprint(model),
               "shape": list(shape), "batch": batch, "running_stats": running_stats,
               "task": "sampling"}
        chosen, how = measure_fastest(
            paths,
            lambda ways: _time_paths(model, ways, shape, device, running_stats, batch),
            key, agree,
        )
    reason = f"auto: {_label(chosen)} at batch {batch}, {how}; {'; '.join(notes)}"
    return dataclasses.replace(chosen, compile=compile, reason=reason)


def _time_training(make_model: Any, paths: list[FastPath], shape: tuple[int, int, int],
                   device: Any, batch: int) -> list[float]:
    """Seconds per round of one training step's forward and backward pass (MSE, as `train` runs
    it) for each path, each on a fresh model of its own; the global random state is kept."""

    x = torch.rand((batch, *shape), generator=torch.Generator().manual_seed(0)).to(device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    calls = []
    for path in paths:
        with torch.random.fork_rng(devices=[]):
            model = make_model().to(device).train()
        if path.channels_last:
            model = model.to(memory_format=torch.channels_last)

        def step(model=model, path=path):
            model.zero_grad(set_to_none=True)
            with path.autocast():
                y = model(to_memory_format(x, path.channels_last))
            F.mse_loss(y.float(), x).backward()

        calls.append(step)
    return time_rounds(calls, sync)


def auto_training_path(make_model: Any, device: Any, *, shape: tuple[int, int, int], batch: int,
                       channels_last: bool | None = None, compile: bool = False,
                       agree: Any = None) -> FastPath:
    """`--precision auto` for training: of fp32 NCHW, fp32 channels-last and (with native
    bf16) bf16, the training step measured fastest for this architecture at this batch size,
    never one slower than fp32 NCHW. `agree` makes every process of a torchrun take rank 0's
    choice. Weights, optimizer and loss stay fp32 in every case."""

    device_type = torch.device(device).type
    with torch.random.fork_rng(devices=[]):
        shell = make_model()
    layouts = ([channels_last] if channels_last is not None
               else [False, True] if _has_conv(shell) else [False])
    native, why = native_bf16(device_type)
    precisions = ["fp32", "bf16"] if native else ["fp32"]
    paths = [FastPath(p, cl, False, device_type, "") for p in precisions for cl in layouts]
    note = "bf16 tried: " + why if native else "bf16 not tried: " + why
    if len(paths) == 1:
        chosen, how = paths[0], "the only way to try"
    else:
        key = {"machine": machine_fingerprint(device), "model": model_fingerprint(shell),
               "shape": list(shape), "batch": batch, "task": "training"}
        chosen, how = measure_fastest(
            paths, lambda ways: _time_training(make_model, ways, shape, device, batch), key,
            agree,
        )
    reason = f"auto: {_label(chosen)} at batch {batch}, {how}; {note}"
    return dataclasses.replace(chosen, compile=compile, reason=reason)


def prepare(model: Any, device: Any, precision: str = "auto", compile: bool = False, *,
            shape: tuple[int, int, int], running_stats: bool = False,
            exact: str | None = None, channels_last: bool | None = None,
            batch_size: int | None = None, agree: Any = None) -> tuple[Any, FastPath]:
    """Choose the fast path for this model on this device and wrap the model in it.

    `auto` measures (`auto_path`) at the run's `batch_size`; `exact`, a reason the run needs
    fp32 (e.g. a measurement finer than bf16's rounding), keeps it to fp32; `agree` (under
    torchrun) gives every process rank 0's choice. A precision asked for explicitly is used as
    asked; its measured deviation from fp32 is in the reason."""
    if precision == "auto":
        fast = auto_path(model, device, shape=shape, batch=batch_size or PROBE_BATCH,
                         running_stats=running_stats, exact=exact,
                         channels_last=channels_last, compile=compile, agree=agree)
        return accelerate(model, fast), fast
    fast = for_model(choose(precision, device, compile, channels_last), model)
    if fast.precision != "fp32":
        probe = min(PROBE_BATCH, batch_size or PROBE_BATCH)
        gap = deviation(model, fast, shape, device, running_stats, max(probe, 2))
        limit = TOLERANCE[fast.precision]
        verdict = "within" if gap <= limit else "OVER"
        fast = dataclasses.replace(
            fast,
            reason=f"{fast.reason}; this model: max |diff| {gap:.4f} vs fp32, "
            f"{verdict} the tolerance {limit}",
        )
    return accelerate(model, fast), fast


def describe(device: Any, model: Any = None, shape: tuple[int, int, int] | None = None,
             batch: int = PROBE_BATCH) -> dict[str, Any]:
    """The truth about this machine for `aegen info --device`: the CPU and its flags, whether
    bf16 is native, and with a model its deviation from fp32 under each reduced precision and
    what `auto` picks for it at `batch` images (measuring it, or recalling the measurement)."""

    device_type = torch.device(device).type
    native, why = native_bf16(device_type)
    here = cpu()
    report: dict[str, Any] = {
        "torch": torch.__version__,
        "device": str(device),
        "cpu": here.name,
        "cpu_flags": here.notable,
        "threads": torch.get_num_threads() if device_type == "cpu" else None,
        "native_bf16": native,
        "why": why,
    }
    if model is not None and shape is not None:
        candidates = [p for p in ("bf16", "fp16") if supported(p, device_type)[0]]
        report["model"] = {
            p: {
                "max_diff": deviation(model, for_model(choose(p, device), model), shape, device),
                "tolerance": TOLERANCE[p],
            }
            for p in candidates
        }
        report["batch"] = batch
        report["auto"] = prepare(model, device, "auto", shape=shape, batch_size=batch)[1].as_json()
    return report

