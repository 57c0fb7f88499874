"""Architecture plugins of the U-Net family: `unet`, its presets, and `unet-hidden`.

The presets are named configs of `unet`: `--arch unet-wide` builds exactly what
`--arch unet --set width=128` builds.
"""

from aegen.api import ConfigError, hookimpl

DEFAULTS = {"width": 64, "depth": 4, "duplicate": False}
PRESETS = {
    "unet-wide": ({"width": 128}, "unet with every channel count doubled (more detail)"),
    "unet-deep": ({"depth": 5}, "unet with one more level (more global coherence)"),
    "unet-deep-wide": ({"width": 128, "depth": 5}, "unet-deep with channels doubled"),
}
HIDDEN_DEFAULTS = {"width": 64, "depth": 4, "code": 100, "hidden": 500, "squeeze": 256}


def _check_unet(name: str, width: int, depth: int, channels: int, size: int, step: int) -> None:
    if channels not in (1, 3):
        raise ConfigError(f"{name} takes 1 or 3 channels, not {channels}")
    if width < 1 or depth < 1:
        raise ConfigError(f"{name} needs width >= 1 and depth >= 1, got {width} and {depth}")
    if size % step or size < step:
        raise ConfigError(
            f"{name} with depth {depth} needs an image size divisible by {step}; got {size}"
        )


def build_unet(config: dict):
    """Build the U-Net from a config; torch is imported only here, when a model is needed."""
    width, depth, channels, size = (config[k] for k in ("width", "depth", "channels", "size"))
    _check_unet("unet", width, depth, channels, size, 2**depth)
    from .unet_model import UNet

    return UNet(channels=channels, width=width, depth=depth, duplicate=config["duplicate"])


def build_unet_hidden(config: dict):
    """The U-Net with a purely linear MLP bottleneck whose sizes follow the image size."""
    width, depth, channels, size = (config[k] for k in ("width", "depth", "channels", "size"))
    _check_unet("unet-hidden", width, depth, channels, size, 2 ** (depth + 1))
    for key in ("code", "hidden", "squeeze"):
        if config[key] < 1:
            raise ConfigError(f"unet-hidden needs {key} >= 1, got {config[key]}")
    from .unet_model import HiddenUNet

    return HiddenUNet(
        channels=channels,
        width=width,
        depth=depth,
        size=size,
        code=config["code"],
        hidden=config["hidden"],
        squeeze=config["squeeze"],
    )


@hookimpl
def register_architectures(register):
    register(
        "unet",
        build_unet,
        description="U-Net without skip connections (the article's main model)",
        defaults=DEFAULTS,
    )
    for name, (changes, description) in PRESETS.items():
        register(name, build_unet, description=description, defaults={**DEFAULTS, **changes})
    register(
        "unet-hidden",
        build_unet_hidden,
        description="unet with a linear hidden-MLP bottleneck; latent: the code vector",
        defaults=HIDDEN_DEFAULTS,
    )
