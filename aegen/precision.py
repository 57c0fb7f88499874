"""The fast path: numeric precision, memory format and compilation, chosen per device.

Sampling is hundreds of forward passes, so it is only as fast as the forward pass. Three levers,
all measured in benchmarks/fast_path.py (docs/performance.md):
- precision: autocast to bf16 or fp16 for the model's own arithmetic; everything outside the
  model (noise, schedule mixing, metrics, files) stays fp32, and outputs come back as fp32;
- memory format: channels-last (NHWC) for image tensors, which oneDNN's convolutions prefer;
- compilation: torch.compile of forward, encode and decode.
`auto` takes bf16 where the hardware has native bf16 (AVX512-BF16 or AMX on CPUs, compute
capability 8.0+ on NVIDIA GPUs) and fp32 elsewhere; docs/performance.md shows that its quality
holds (per-step tolerance and the default model's quality benchmark).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

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
        import torch

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
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def native_bf16(device_type: str) -> tuple[bool, str]:
    """Whether the device computes bf16 natively (so bf16 is faster, not emulated), and why."""
    import torch

    if device_type == "cpu":
        probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        if probe is not None and probe():
            return True, "this CPU has native bf16 (AVX512-BF16 or AMX) for oneDNN"
        return False, "this CPU has no native bf16, so bf16 would be emulated (slower)"
    if device_type == "cuda":
        major, minor = torch.cuda.get_device_capability()
        name = torch.cuda.get_device_name()
        if major >= 8:
            return True, f"{name} (compute capability {major}.{minor}) has native bf16"
        return False, f"{name} (compute capability {major}.{minor}) lacks native bf16"
    return False, f"no bf16 fast path is known for {device_type}"


def supported(precision: str, device_type: str) -> tuple[bool, str]:
    """Whether `precision` can run on this device at all (emulated counts), and why not."""
    import torch

    if precision == "fp32":
        return True, ""
    if device_type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            return False, "this GPU does not support bf16"
        return True, ""
    if device_type == "cpu":
        return True, ""  # oneDNN emulates bf16 and fp16 where the CPU lacks them
    return False, f"--precision {precision} is not supported on {device_type}"


def choose(precision: str = "auto", device: Any = "cpu", compile: bool = False,
           channels_last: bool | None = None) -> FastPath:
    """Resolve `--precision` (and `--compile`) for a device; `auto` explains its choice.
    `channels_last` None picks the memory format that measured faster; True or False (the
    `--channels-last` / `--contiguous` flags) overrides it, e.g. to reproduce a run exactly."""
    import torch

    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    device_type = torch.device(device).type
    if precision == "auto":
        fast, why = native_bf16(device_type)
        precision = "bf16" if fast else "fp32"
        reason = f"auto: {precision}, because {why}"
    else:
        ok, why = supported(precision, device_type)
        if not ok:
            raise UsageError(why)
        reason = f"{precision}, as asked"
    # Channels-last measured faster for every U-Net on this project's CPUs, in fp32 and bf16
    # (docs/performance.md); on GPUs it pays with tensor cores, i.e. at reduced precision.
    if channels_last is None:
        channels_last = device_type == "cpu" or precision != "fp32"
    return FastPath(precision, channels_last, compile, device_type, reason)


def to_memory_format(x: Any, channels_last: bool) -> Any:
    """An image batch in channels-last layout when asked (anything else as it is)."""
    import torch

    if channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _back_to_fp32(y: Any) -> Any:
    import torch

    if isinstance(y, torch.Tensor):
        if y.is_floating_point() and y.dtype != torch.float32:
            y = y.float()
        return y.contiguous() if y.dim() == 4 else y
    return y


def accelerate(model: Any, fast: FastPath) -> Any:
    """Wrap a model so forward, encode and decode run on the fast path; inputs and outputs
    stay ordinary fp32 contiguous tensors, so samplers and metrics need not know."""
    import torch

    if fast.precision == "fp32" and not fast.channels_last and not fast.compile:
        return model
    if fast.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return FastModel(model, fast)


def compiled(fn: Any) -> Any:
    """torch.compile, without the warning inductor's import prints about CUDA_HOME on
    machines with no CUDA runtime (it concerns C++ extensions, not aegen)."""
    import torch

    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    return torch.compile(fn)


def _fast_module_class():
    import torch

    class _FastModel(torch.nn.Module):
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

    return _FastModel


def FastModel(inner: Any, fast: FastPath) -> Any:  # noqa: N802  (a class made on first use)
    """A module wrapping `inner` (built lazily so importing aegen needs no torch)."""
    global _FAST_MODEL
    if _FAST_MODEL is None:
        _FAST_MODEL = _fast_module_class()
    return _FAST_MODEL(inner, fast)


_FAST_MODEL: Any = None


PROBE_BATCH = 16


def for_model(fast: FastPath, model: Any) -> FastPath:
    """`fast` without channels-last for a model with no 2-D convolutions (an MLP), where the
    layout would only add a copy."""
    import dataclasses

    import torch

    if fast.channels_last and not any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        return dataclasses.replace(fast, channels_last=False)
    return fast


def deviation(model: Any, fast: FastPath, shape: tuple[int, int, int], device: Any,
              running_stats: bool = False, batch: int = PROBE_BATCH) -> float:
    """Largest per-pixel difference between `fast` and fp32 NCHW on one fixed probe batch
    (uniform pixels, batch statistics as in sampling): what `auto` checks per model."""
    import dataclasses

    import torch

    from .models import sampling_mode

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


def prepare(model: Any, device: Any, precision: str = "auto", compile: bool = False, *,
            shape: tuple[int, int, int], running_stats: bool = False,
            exact: str | None = None, channels_last: bool | None = None,
            batch_size: int | None = None) -> tuple[Any, FastPath]:
    """Choose the fast path for this model on this device and wrap the model in it.

    `auto` keeps bf16 only if this model's output stays within TOLERANCE["bf16"] of fp32 on a
    probe batch; otherwise it falls back to fp32 and says why in `FastPath.reason`. `exact`, a
    reason the run needs fp32 (e.g. a measurement finer than bf16's rounding), makes `auto` take
    fp32. A precision asked for explicitly is used as asked; its measured deviation is in the
    reason. The probe batch is no larger than the run's `batch_size` (memory)."""
    import dataclasses

    fast = for_model(choose(precision, device, compile, channels_last), model)
    if precision == "auto" and exact and fast.precision != "fp32":
        fast = for_model(choose("fp32", device, compile, channels_last), model)
        fast = dataclasses.replace(fast, reason=f"auto: fp32, because {exact}")
    if fast.precision != "fp32":
        try:
            probe = min(PROBE_BATCH, batch_size or PROBE_BATCH)
            gap = deviation(model, fast, shape, device, running_stats, max(probe, 2))
        except Exception as exc:  # e.g. a plugin's op with no kernel at this precision
            if precision != "auto":
                raise
            gap, failure = float("inf"), f"{type(exc).__name__}: {exc}"
        else:
            failure = ""
        limit = TOLERANCE[fast.precision]
        if gap > limit and precision == "auto":
            fast = dataclasses.replace(
                fast,
                precision="fp32",
                channels_last=for_model(
                    choose("fp32", device, channels_last=channels_last), model
                ).channels_last,
                reason=(
                    f"auto: fp32, because this model failed under {fast.precision} ({failure})"
                    if failure else
                    f"auto: fp32, because this model's output under {fast.precision} differs "
                    f"from fp32 by up to {gap:.3f}, over the tolerance {limit}"
                ),
            )
        else:
            verdict = "within" if gap <= limit else "OVER"
            fast = dataclasses.replace(
                fast,
                reason=f"{fast.reason}; this model: max |diff| {gap:.4f} vs fp32, "
                f"{verdict} the tolerance {limit}",
            )
    return accelerate(model, fast), fast


def describe(device: Any, model: Any = None, shape: tuple[int, int, int] | None = None,
             ) -> dict[str, Any]:
    """What `auto` chooses on this machine and why; with a model, also the per-model check
    (the model's bf16/fp16 deviation from fp32 on the probe batch), for `aegen info --device`."""
    import torch

    device_type = torch.device(device).type
    fast, why = native_bf16(device_type)
    report: dict[str, Any] = {
        "torch": torch.__version__,
        "device": str(device),
        "threads": torch.get_num_threads() if device_type == "cpu" else None,
        "native_bf16": fast,
        "why": why,
        "auto": choose("auto", device).as_json(),
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
        report["auto"] = prepare(model, device, "auto", shape=shape)[1].as_json()
    return report


def unwrap(model: Any) -> Any:
    """The plain model inside a fast-path wrapper (for saving weights)."""
    return getattr(model, "inner", model)


@contextlib.contextmanager
def training_step(fast: FastPath) -> Iterator[None]:
    """Autocast around a training forward pass; the loss and the optimizer stay fp32."""
    with fast.autocast():
        yield
