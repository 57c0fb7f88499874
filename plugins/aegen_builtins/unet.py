"""Architecture plugin `unet`: the seed's U-Net with its skip connections removed."""

from aegen.api import ConfigError, hookimpl

DEFAULTS = {"width": 64, "depth": 4, "duplicate": False}


def build_unet(config: dict):
    """Build the U-Net from a config; torch is imported only here, when a model is needed."""
    width, depth, channels, size = (config[k] for k in ("width", "depth", "channels", "size"))
    if channels not in (1, 3):
        raise ConfigError(f"unet takes 1 or 3 channels, not {channels}")
    if width < 1 or depth < 1:
        raise ConfigError(f"unet needs width >= 1 and depth >= 1, got {width} and {depth}")
    if size % 2**depth or size < 2**depth:
        raise ConfigError(
            f"unet with depth {depth} needs an image size divisible by {2**depth}; got {size}"
        )
    from .unet_model import UNet

    return UNet(channels=channels, width=width, depth=depth, duplicate=config["duplicate"])


@hookimpl
def register_architectures(register):
    register(
        "unet",
        build_unet,
        description="U-Net without skip connections (the seed's main model); latent at 1/2**depth",
        defaults=DEFAULTS,
    )
