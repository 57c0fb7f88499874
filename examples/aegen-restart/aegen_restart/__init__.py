"""aegen-restart: the sampler `restart`, iterated denoising run as several restarted cycles."""

from aegen.api import ConfigError, Option, get_schedule, hookimpl

__version__ = "0.1.0"


def restart(model, x, *, steps, noise, schedule="cosine", cycles=3, renoise=0.5, mu=0.7, sigma=0.2):
    """Restart sampling (after Xu et al. 2023, "Restart Sampling for Improving Generative
    Processes") on the original article's iterated denoising.

    The N steps are split into K cycles of L_j steps (N // K each, the first N % K one longer).
    Cycle j has a noise level r_j: r_0 = 1, r_j = renoise after. It starts from
    a = (1 - r_j) * g + r_j * N(mu, sigma) (a ~ N(mu, sigma), or the batch x, for j = 0; g is
    the last output), then for k = 0..L_j-1: g = model(a), and, with (c, d) = schedule(k, L_j),
    a = (1 - r_j + r_j * c) * g + r_j * d * N(mu, sigma). With r = 1 that is the article's step
    a = c * g + d * noise, so K = 1 is the `schedule` sampler; r < 1 runs the whole schedule
    again inside the noise level r, keeping what earlier cycles found. Yields every g.
    """
    if cycles > steps:
        raise ConfigError(
            f"sampler 'restart': cycles ({cycles}) must not exceed steps ({steps}); "
            "each cycle needs at least one step"
        )
    weights = get_schedule(schedule)
    a = g = None
    for j in range(cycles):
        length = steps // cycles + (j < steps % cycles)
        level = 1.0 if j == 0 else renoise
        if j == 0:
            a = noise.normal(mu, sigma) if x is None else x
        else:
            a = noise.normal(mu, sigma).mul_(level).add_(g, alpha=1.0 - level)
        for k in range(length):
            g = model(a)
            yield g
            if k + 1 < length:
                c, d = weights(k, length)
                a = noise.normal(mu, sigma).mul_(level * d).add_(g, alpha=1.0 - level + level * c)


@hookimpl
def register_samplers(register):
    register(
        "restart",
        restart,
        description="iterated denoising in cycles, each restarting from the re-noised result",
        options={
            "schedule": Option(
                "cosine", "registered schedule each cycle runs through", check=get_schedule
            ),
            "cycles": Option(3, "number of cycles the steps are split into", min=1),
            "renoise": Option(
                0.5, "noise weight when a cycle restarts (1: from fresh noise)", min=0.0, max=1.0
            ),
            "mu": Option(0.7, "mean of the noise"),
            "sigma": Option(0.2, "standard deviation of the noise", min=0.0),
        },
    )
