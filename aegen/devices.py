"""Choosing the device to run on."""

from __future__ import annotations

import torch

from .errors import UsageError

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> torch.device:
    """torch.device for `name`; 'auto' takes CUDA, then MPS, then the CPU."""
    base = name.split(":")[0]
    if base not in DEVICES:
        raise UsageError(f"unknown device {name!r} (choose from {', '.join(DEVICES)})")
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_ok else "cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise UsageError("`device` cuda: CUDA is not available on this machine",
                         parameters=["device"])
    if base == "mps" and not mps_ok:
        raise UsageError("`device` mps: MPS is not available on this machine",
                         parameters=["device"])
    return torch.device(name)
