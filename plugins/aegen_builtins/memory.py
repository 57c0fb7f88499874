"""How much memory this machine has, for refusing models that cannot fit (no torch needed)."""

import os


def physical_memory() -> int:
    """Bytes of physical memory, or a large number where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 50


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"
