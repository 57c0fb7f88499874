"""Objective plugins `copy` (the article's) and `denoise` (the `schedule` sampler's corruption).

An objective makes the model's training input from a clean batch; the target is always the
clean batch. `denoise` shows the model exactly the inputs the `schedule` sampler will feed it:
a = c * clean + d * N(mu, sigma), with (c, d) the schedule's weights at a step drawn uniformly
per image.
"""

from aegen.api import Option, get_schedule, hookimpl

# The sampler's step n of N has weights schedule(n, N); training draws n/N on this fine grid,
# so every step count a user samples with is covered.
GRID = 1000


def copy(clean, *, generator):
    """The original article's plain autoencoding: the input is the target."""
    return clean


def denoise(clean, *, generator, schedule="linear", mu=0.7, sigma=0.2):
    """c * clean + d * N(mu, sigma), (c, d) = schedule(n, GRID) with n uniform per image."""
    import torch  # here, not at import: `aegen --help` loads plugins without torch

    weights = get_schedule(schedule)
    steps = torch.randint(0, GRID, (len(clean),), generator=generator, device=generator.device)
    mix = torch.tensor([weights(int(n), GRID) for n in steps.tolist()], dtype=clean.dtype)
    c, d = (w.to(clean.device).view(-1, *[1] * (clean.dim() - 1)) for w in mix.unbind(1))
    noise = torch.empty_like(clean).normal_(mu, sigma, generator=generator)
    return noise.mul_(d).add_(clean * c)


@hookimpl
def register_objectives(register):
    register("copy", copy, description="plain autoencoding: input = target (the article's)",
             corrupts=False)
    register(
        "denoise",
        denoise,
        description="input = c*clean + d*N(mu, sigma) at a random step of a schedule, "
        "as the schedule sampler sees it",
        options={
            "schedule": Option(
                "linear", "registered schedule whose weights mix image and noise",
                check=get_schedule,
            ),
            "mu": Option(0.7, "mean of the noise (also the sampler's default)"),
            "sigma": Option(0.2, "standard deviation of the noise", min=0.0),
        },
        corrupts=True,
    )
