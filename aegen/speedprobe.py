"""Timing a few ways of running the same work, fairly: interleaved rounds after a warm-up, the
fastest round of each (another process's load only ever adds time, so the minimum is the
steadiest estimate on a busy machine). `--precision auto` uses it to pick what is fastest on
the machine it runs on, and remembers the answer (aegen/cache.py) so that later runs choose the
same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

CACHE_NAME = "fastpath"
MIN_ROUNDS = 3
MAX_ROUNDS = 9
BUDGET_S = 0.4  # rounds continue, up to MAX_ROUNDS, until this much time was spent
MARGIN = 0.05  # another way must be this much faster than the plain one to be chosen


def best_times(calls: Sequence[Callable[[], Any]], sync: Callable[[], None] = lambda: None,
                 warmup: int = 1) -> list[float]:
    """The least seconds of each call, over rounds that run every call once in turn (so a
    machine's drift or a neighbour's load falls on all of them alike)."""
    for call in calls:
        for _ in range(warmup):
            call()
    sync()
    samples: list[list[float]] = [[] for _ in calls]
    began = time.perf_counter()
    for round_ in range(MAX_ROUNDS):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call()
            sync()
            samples[i].append(time.perf_counter() - start)
        if round_ + 1 >= MIN_ROUNDS and time.perf_counter() - began >= BUDGET_S:
            break
    return [min(s) for s in samples]


def fastest(times: Sequence[float], baseline: int = 0) -> int:
    """The index of the fastest way, unless it is not clearly (MARGIN) faster than the
    baseline: then the baseline, so a choice is never slower than plain fp32 as measured."""
    best = min(range(len(times)), key=times.__getitem__)
    if best != baseline and times[best] > (1 - MARGIN) * times[baseline]:
        return baseline
    return best


def model_fingerprint(model: Any) -> dict[str, Any]:
    """What a model's speed depends on: its class and the shapes of its tensors (not the
    values: retraining the same architecture keeps the measurement)."""
    cls = type(model)
    tensors = [[name, list(t.shape), str(t.dtype)] for name, t in
               [*model.named_parameters(), *model.named_buffers()]]
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "tensors": tensors}


def machine_fingerprint(device: Any) -> dict[str, Any]:
    """What speed depends on besides the model: CPU, its flags, threads, torch, GPU."""
    import torch

    from .hardware import cpu

    here = cpu()
    device = torch.device(device)
    fields: dict[str, Any] = {
        "cpu": here.name,
        "flags": sorted(here.flags or []),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device.type,
    }
    if device.type == "cuda":
        fields["gpu"] = torch.cuda.get_device_name(device)
    return fields
