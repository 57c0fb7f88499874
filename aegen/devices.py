"""Choosing the device to run on."""

from __future__ import annotations

import torch

from .errors import UsageError

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> torch.device:
    """torch.device for `name`; 'auto' takes CUDA, then MPS, then the CPU. A device number
    (cuda:1) must be a whole number, and for CUDA one this machine has."""
    base, colon, index = str(name).partition(":")
    if base not in DEVICES:
        raise UsageError(f"unknown device {name!r} (choose from {', '.join(DEVICES)})")
    if colon and not (base != "auto" and index.isascii() and index.isdigit() and len(index) < 5):
        raise UsageError(
            f"`device` {name!r}: after {base}: comes a device number, e.g. {base}:0"
            if base != "auto" else f"`device` {name!r}: auto takes no device number",
            parameters=["device"],
        )
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_ok else "cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise UsageError("`device` cuda: CUDA is not available on this machine",
                         parameters=["device"])
    if base == "cuda" and colon and int(index) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise UsageError(f"`device` {name}: this machine has {count} CUDA device(s), "
                         f"cuda:0 to cuda:{count - 1}", parameters=["device"])
    if base == "mps" and not mps_ok:
        raise UsageError("`device` mps: MPS is not available on this machine",
                         parameters=["device"])
    return torch.device(name)
