"""What this machine's CPU is and can do, read from the operating system, not guessed.

PyTorch's own probe (`torch.ops.mkldnn._is_mkldnn_bf16_supported`) answers "can oneDNN run bf16",
which is also true where it only emulates bf16 on AVX-512 (slower than fp32). Native bf16 means
the AVX512-BF16 or AMX-BF16 instructions on x86, or the BF16 extension on Arm: those are flags
the kernel lists in /proc/cpuinfo.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

# The flags that decide which kernels run: shown by `aegen info --device` and kept in the key
# of measured speeds (another CPU with other flags measures again).
NOTABLE_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "asimd", "bf16", "sve")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86: first two; Arm (Features): bf16


@dataclass(frozen=True)
class Cpu:
    """The CPU's name and feature flags; `flags` is None where the system does not list them."""

    name: str
    machine: str
    flags: frozenset[str] | None

    @property
    def notable(self) -> list[str]:
        return [f for f in NOTABLE_FLAGS if self.flags and f in self.flags]

    def native_bf16(self) -> tuple[bool, str]:
        """Whether the CPU computes bf16 in hardware, and why we think so."""
        if self.flags is None:
            return False, (
                f"{self.name}: its feature flags cannot be read here, so bf16 is not assumed "
                "to be native"
            )
        found = [f for f in NATIVE_BF16_FLAGS if f in self.flags]
        if found:
            return True, f"{self.name} has native bf16 ({', '.join(found)})"
        return False, (
            f"{self.name} has no native bf16 (no avx512_bf16 or amx_bf16): bf16 would be "
            "emulated, slower than fp32"
        )


def _cpuinfo(text: str) -> tuple[str | None, frozenset[str] | None]:
    """The model name and flags of the first processor listed in /proc/cpuinfo's text."""
    name = flags = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and name is None:
            name = value.strip() or None
        elif key in ("flags", "features") and flags is None:
            flags = frozenset(value.split())
        if name is not None and flags is not None:
            break
    return name, flags


@functools.lru_cache(maxsize=1)
def cpu() -> Cpu:
    """This machine's CPU (read once per process)."""
    name, flags = None, None
    try:
        name, flags = _cpuinfo(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        pass
    return Cpu(
        name=name or platform.processor() or platform.machine() or "unknown CPU",
        machine=platform.machine(),
        flags=flags,
    )
