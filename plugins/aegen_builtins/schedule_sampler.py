"""Sampler plugin `schedule`: the original article's "diffusion with no diffusion"."""

from aegen.api import Option, get_schedule, hookimpl


def schedule(model, x, *, steps, noise, schedule="linear", mu=0.7, sigma=0.2):
    """Iterated denoising of pure noise on a schedule.

    a_0 ~ N(mu, sigma) (or the given batch x); for n = 0..N-1: g_n = model(a_n) and
    a_{n+1} = c_n * g_n + d_n * N(mu, sigma) with fresh noise each step. Yields every g_n;
    the last is the sample. No clamping between steps, as in the original article.
    """
    weights = get_schedule(schedule)
    a = noise.normal(mu, sigma) if x is None else x
    for n in range(steps):
        g = model(a)
        yield g
        if n + 1 < steps:
            c, d = weights(n, steps)
            a = noise.normal(mu, sigma).mul_(d).add_(g, alpha=c)


@hookimpl
def register_samplers(register):
    register(
        "schedule",
        schedule,
        description="iterated denoising of N(mu, sigma) noise on a schedule (the article's method)",
        options={
            "schedule": Option(
                "linear", "registered schedule to mix output and noise", check=get_schedule
            ),
            "mu": Option(0.7, "mean of the noise"),
            "sigma": Option(0.2, "standard deviation of the noise", min=0.0),
        },
    )
