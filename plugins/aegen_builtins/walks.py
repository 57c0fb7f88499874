"""Sampler plugins `walk` and `noiseless-walk`: walks along the learned manifold."""

from aegen.api import ConfigError, Option, hookimpl


def _start(x, name):
    if x is None:
        raise ConfigError(
            f"sampler {name!r} walks from starting images: give it some "
            "(aegen walk makes them with the schedule sampler when --input is omitted)"
        )
    return x


def walk(model, x, *, steps, noise, eps=0.2):
    """Noisy manifold walk: h = E(g_n) + N(0, eps); g_{n+1} = D(h). Yields g_1 .. g_N."""
    g = _start(x, "walk")
    for _ in range(steps):
        h = model.encode(g)
        g = model.decode(h.add_(noise.normal(0.0, eps, like=h)))
        yield g


def noiseless_walk(model, x, *, steps, noise):
    """Noiseless manifold walk: g_{n+1} = D(E(g_n)). Yields g_1 .. g_N."""
    g = _start(x, "noiseless-walk")
    for _ in range(steps):
        g = model.decode(model.encode(g))
        yield g


@hookimpl
def register_samplers(register):
    register(
        "walk",
        walk,
        description="noisy walk along the manifold: h = E(g) + N(0, eps); g = D(h)",
        options={"eps": Option(0.2, "standard deviation of the latent noise", min=0.0)},
    )
    register(
        "noiseless-walk",
        noiseless_walk,
        description="noiseless walk: g = D(E(g)), repeated",
    )
