"""Architecture plugin `mlp`: the original article's overcomplete fully connected autoencoder."""

from aegen.api import ConfigError, hookimpl

from .memory import gib, physical_memory

DEFAULTS = {"width": 0, "layers": 5}
LIMITS = {"width": (0, 2**20), "layers": (2, 64)}  # width 0: 1.3x the input; memory checked too


def parameter_count(inputs: int, width: int, layers: int) -> int:
    """Weights and biases of the in/out layers and hidden layers, plus batch norm's affine."""
    return 2 * inputs * width + inputs + width + layers * (width * width + width) + 2 * width


def build_mlp(config: dict):
    channels, size = config["channels"], config["size"]
    if channels not in (1, 3):
        raise ConfigError(f"mlp takes 1 or 3 channels, not {channels}")
    inputs = channels * size * size
    width = config["width"] or round(1.3 * inputs)
    if width <= inputs:
        raise ConfigError(
            f"mlp width {width} must exceed the input size {inputs} "
            "(it is an overcomplete autoencoder)"
        )
    if config["layers"] < 2:
        raise ConfigError(f"mlp needs at least 2 hidden layers, got {config['layers']}")
    params = parameter_count(inputs, width, config["layers"])
    needed = params * 4 * 4  # float32 weights, gradients and Adam's two moments
    if needed > physical_memory():
        raise ConfigError(
            f"mlp at {channels}x{size}x{size} with width {width} has {params / 1e9:.2f} B "
            f"parameters and needs about {gib(needed)} to train; this machine has "
            f"{gib(physical_memory())}: use a smaller `size` or `config` width=N",
            parameters=["size", "config"],
        )
    from .mlp_model import OvercompleteMLP

    return OvercompleteMLP(channels=channels, size=size, width=width, layers=config["layers"])


@hookimpl
def register_architectures(register):
    register(
        "mlp",
        build_mlp,
        description="overcomplete fully connected autoencoder (width 1.3x the input by default)",
        defaults=DEFAULTS,
        limits=LIMITS,
    )
