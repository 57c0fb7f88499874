"""Timing a few ways of running the same work, fairly: interleaved rounds after a warm-up; each
way's fastest round is its time (another process's load only ever adds time, so the minimum is
the steadiest estimate on a busy machine), and a way must also win round by round.
`--precision auto` uses it to pick what is fastest on the machine it runs on, and remembers the
answer (aegen/cache.py) so that later runs choose the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .hardware import cpu

CACHE_NAME = "fastpath"
MIN_ROUNDS = 3
MAX_ROUNDS = 9
BUDGET_S = 0.4  # rounds continue, up to MAX_ROUNDS, until this much time was spent
MARGIN = 0.05  # another way must be this much faster than the plain one to be chosen


def time_rounds(calls: Sequence[Callable[[], Any]], sync: Callable[[], None] = lambda: None,
                warmup: int = 1) -> list[list[float]]:
    """Seconds of each call in each round; a round runs every call once in turn (so a
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
    return samples


def fastest(samples: Sequence[Sequence[float]], baseline: int = 0) -> int:
    """The index of the way with the least time, if it is clearly faster than the baseline:
    by MARGIN on their best rounds, and in at least three rounds of four, round by round (a
    sign test, so that noise between two equally fast ways keeps the baseline). Otherwise the
    baseline: a choice is never one measured slower than the plain way."""
    best = min(range(len(samples)), key=lambda i: min(samples[i]))
    if best == baseline:
        return baseline
    ours, theirs = samples[best], samples[baseline]
    wins = sum(a < b for a, b in zip(ours, theirs))
    if min(ours) > (1 - MARGIN) * min(theirs) or wins < 0.75 * len(ours):
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
