"""The article's input-representation experiment: which input x does a layer see as the input a?

Gradient descent on x from x_0 = mu + N(0, 1) / 20 to minimise k * sum |A(a) - A(x)| (L1), where
A is the activation at a chosen layer, with plain steps x -= lr * grad (the original's: lr 0.1,
k 0.01, 500 steps). A trained model's deep representation of a noisy input loses the noise; an
untrained one's looks like Gaussian noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import UsageError
from .models import check_batch_statistics, sampling_mode
from .noise import Noise

SPECIAL_LAYERS = {"encoder": "the encoder's output, the latent h", "output": "the model output"}


def layer_names(model: torch.nn.Module) -> list[str]:
    """Layers `represent` can match: 'encoder', 'output', then every named submodule."""
    return [*SPECIAL_LAYERS, *(name for name, _ in model.named_modules() if name)]


def activation_of(model: torch.nn.Module, layer: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function x -> the activation of `layer` for input x."""
    if layer == "encoder":
        return model.encode
    if layer == "output":
        return model
    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        raise UsageError(f"no layer {layer!r} in this model; see `list_layers`",
                         parameters=["list_layers"])
    module = modules[layer]

    def run(x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        handle = module.register_forward_hook(lambda m, i, out: captured.append(out))
        try:
            model(x)
        finally:
            handle.remove()
        if not captured or not isinstance(captured[0], torch.Tensor):
            raise UsageError(f"layer {layer!r} produced no tensor in the forward pass")
        return captured[0]

    return run


@dataclass
class Representation:
    """The found input, its final loss and its distance to the real input."""

    x: torch.Tensor
    loss: float
    distance: float
    losses: list[float]


def represent(
    model: torch.nn.Module,
    image: torch.Tensor,
    *,
    layer: str = "output",
    steps: int = 500,
    lr: float = 0.1,
    loss_scale: float = 0.01,
    mu: float = 0.7,
    seed: int = 0,
    running_stats: bool = False,
    record_every: int = 50,
) -> Representation:
    """Descend from mu + N(0, 1)/20 to an input whose `layer` activation matches `image`'s.

    `image` is one (C, H, W) tensor in [0, 1]. The model's weights are not changed.
    """
    if steps < 1 or lr <= 0:
        raise UsageError("`steps` must be at least 1 and `lr` positive", parameters=["steps", "lr"])
    if not running_stats:
        check_batch_statistics(model, 1)
    device = next(iter(model.parameters()), torch.zeros(())).device
    a = image.unsqueeze(0).to(device)
    activation = activation_of(model, layer)
    x = (mu + Noise([seed], a.shape[1:], device).normal(0.0, 1.0) / 20).requires_grad_(True)
    losses: list[float] = []
    with sampling_mode(model, running_stats):
        with torch.no_grad():
            target = activation(a)
        for step in range(steps):
            loss = loss_scale * (target - activation(x)).abs().sum()
            (grad,) = torch.autograd.grad(loss, [x])
            with torch.no_grad():
                x -= lr * grad
            if step % record_every == 0 or step + 1 == steps:
                losses.append(loss.item())
        with torch.no_grad():
            final = (loss_scale * (target - activation(x)).abs().sum()).item()
    x = x.detach()
    return Representation(x=x[0].cpu(), loss=final, distance=(x - a).norm().item(), losses=losses)
