"""aegen: generate images from autoencoders trained only to copy their input."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aegen")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
