"""Schedule plugins `linear` and `cosine`: how much of the model output to keep at step n.

A schedule returns (c, d) for step n of N; the sampler then mixes a = c * g + d * noise.
"""

import math

from aegen.api import hookimpl


def linear(n: int, steps: int) -> tuple[float, float]:
    """The original article's schedule: c = n / N, d = 1 - c."""
    c = n / steps
    return c, 1.0 - c


def cosine(n: int, steps: int) -> tuple[float, float]:
    """c = sin^2(pi/2 * n / N), d = 1 - c: slow at both ends, like the cosine schedule of
    improved DDPM (its signal fraction cos^2, run from pure noise to clean)."""
    c = math.sin(math.pi / 2 * n / steps) ** 2
    return c, 1.0 - c


@hookimpl
def register_schedules(register):
    register("linear", linear, description="c = n/N, d = 1 - c (the article's schedule)")
    register("cosine", cosine, description="c = sin^2(pi/2 n/N), d = 1 - c")
