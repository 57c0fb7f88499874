"""FID, KID and precision/recall of two sets of features.

FID and KID are torchmetrics' own (`FrechetInceptionDistance`, `KernelInceptionDistance`), fed
features aegen extracted (their `feature` argument takes any module; here one that hands the
features through), so the arithmetic is a maintained library's: FID from float64 means and
covariances (n - 1) with the matrix square root's trace from eigenvalues; KID the unbiased MMD^2
estimator with the cubic kernel (x.y / d + 1)^3, over `subsets` random subsets of
`subset_size`, drawn from a fixed seed so a figure repeats. Precision and recall (Kynkaanniemi
et al. 2019, k = 3) have no torchmetrics version and are computed here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from .inception import INSTALL, MissingExtra

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
K = 3


class _Given(torch.nn.Module):
    """A "feature extractor" for torchmetrics that returns the features it is given."""

    def __init__(self, features: int):
        super().__init__()
        self.num_features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _torchmetrics():
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance
    except ImportError as exc:
        raise MissingExtra(f"aegen eval needs torchmetrics ({exc}): {INSTALL}") from None
    return FrechetInceptionDistance, KernelInceptionDistance


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N, D)."""
    fid_class, _ = _torchmetrics()
    metric = fid_class(feature=_Given(real.shape[1])).double()
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float, int]:
    """KID's mean and standard deviation over subsets, and the subset size used (at most
    the smaller set's size)."""
    _, kid_class = _torchmetrics()
    size = min(subset_size, len(real), len(fake))
    with warnings.catch_warnings():  # "will save all extracted features": it is meant to
        warnings.simplefilter("ignore", UserWarning)
        metric = kid_class(feature=_Given(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std), size


def _radii(features: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point of the same set."""
    out = []
    for start in range(0, len(features), chunk):
        d = torch.cdist(features[start:start + chunk], features)
        out.append(d.kthvalue(k + 1, dim=1).values)  # the 0 to itself is the first
    return torch.cat(out)


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor,
             chunk: int = 1024) -> torch.Tensor:
    """Whether each point lies within some centre's ball."""
    out = []
    for start in range(0, len(points), chunk):
        d = torch.cdist(points[start:start + chunk], centres)
        out.append((d <= radii[None, :]).any(dim=1))
    return torch.cat(out)


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float
    count: int  # points of each set used


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = K,
                     seed: int = 0) -> PrecisionRecall:
    """Improved precision (share of fakes inside the real manifold: the union of balls
    reaching each real point's k-th neighbour) and recall (the reverse). The larger set is
    cut to the smaller's size by a seeded draw: the radii shrink as a set grows, so unequal
    sets would flatter one side."""
    count = min(len(real), len(fake))
    if count <= k:
        raise ValueError(f"precision/recall with k = {k} needs more than {k} images in each set")
    gen = torch.Generator().manual_seed(seed)
    real = real[torch.randperm(len(real), generator=gen)[:count]].double()
    fake = fake[torch.randperm(len(fake), generator=gen)[:count]].double()
    precision = _covered(fake, real, _radii(real, k)).double().mean()
    recall = _covered(real, fake, _radii(fake, k)).double().mean()
    return PrecisionRecall(float(precision), float(recall), count)
