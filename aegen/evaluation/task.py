"""`aegen eval` as a function: FID, KID and precision/recall of samples against reference
images, the samples read from files or drawn from a checkpoint (one setting, or a sweep).

Reference features are cached (aegen/evaluation/imagesets.py in the repository); in a sweep each
setting's result is cached too, keyed by the checkpoint's bytes, every sampling setting, the
fast path and the reference, so an interrupted sweep resumes at the first setting not done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import cache
from ..console import Reporter
from ..defaults import resolve_checkpoint
from ..devices import pick_device
from ..errors import UsageError
from ..files import refuse_overwrite
from ..handoff import sampler_for_run
from ..header import read_checkpoint_info
from ..loading import LoadedModel, load_model
from ..outputs import Outputs, plan, write_images
from ..sampling import CheckedSampler, batches, generate, with_sampler_steps
from ..settings import Runtime, SamplingSettings
from . import metrics
from .imagesets import (
    Images,
    cached_features,
    check_count,
    content_key,
    extract,
    features_dir,
    read_set,
    store_features,
)
from .inception import Extractor, load_extractor
from .plot import plot_sweep
from .sweep import combinations, label

DEFAULT_REFERENCE = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
"""The default model's own reference set: Fashion-MNIST's 10,000 test images where Debian's
dataset-fashion-mnist package puts them."""
DEFAULT_N = 1000
DEFAULT_PLOT = "eval-sweep.png"
RESULTS = "eval-results"  # the cache file of per-setting sweep results


@dataclass(frozen=True)
class EvalSettings:
    """What to compare: `samples` (files) or a checkpoint's samples, against `reference`, at
    `size`, with at most `reference_n` reference images and `samples_n` sample files;
    `sweeps` {key: values} over sampling settings; features extracted `feature_batch` at a
    time; `cache` of reference features and sweep results; `plot`, a sweep's PNG of FID
    against model evaluations; `force` to overwrite it."""

    reference: str | os.PathLike | None = None
    samples: str | os.PathLike | None = None
    size: int | None = None
    reference_n: int | None = None
    samples_n: int | None = None
    sweeps: dict[str, list[str]] = field(default_factory=dict)
    feature_batch: int = 50
    cache: bool = True
    plot: str | os.PathLike | None = None
    feature_precision: str = "fp32"
    force: bool = False


@dataclass(frozen=True)
class EvalResult:
    """What `evaluate` measured; `as_json()` is `aegen eval --json`."""

    reference: dict[str, Any]
    samples: dict[str, Any]
    extractor: str
    rows: list[dict[str, Any]]
    plot: str | None = None
    written: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def evaluate(checkpoint: str | os.PathLike | None, settings: EvalSettings,
             sampling: SamplingSettings | None = None, *, outputs: Outputs | None = None,
             runtime: Runtime | None = None, reporter: Reporter | None = None) -> EvalResult:
    """FID, KID (mean, std over subsets) and precision/recall (k = 3) of samples against
    `settings.reference`: the files at `settings.samples`, or `sampling.n` images drawn from
    `checkpoint` (the default model when None and no samples), once per sweep combination.
    `outputs` writes the drawn images (not in a sweep). Without a reference, the default
    model is judged against its own reference set (DEFAULT_REFERENCE)."""
    reporter = reporter or Reporter(quiet=True)
    runtime = runtime or Runtime()
    sampling = sampling or SamplingSettings(n=DEFAULT_N, seed=0)
    if sampling.seed is None:  # a fixed seed: the same call gives the same figure
        sampling = dataclasses.replace(sampling, seed=0)
    _check_counts(settings)
    reference = _reference_path(checkpoint, settings)
    if settings.samples is not None:
        return _evaluate_files(settings, reference, runtime, reporter)
    return _evaluate_model(checkpoint, settings, (reference, sampling, outputs), runtime,
                           reporter)


def _extractor(runtime: Runtime, settings: EvalSettings) -> Extractor:
    """Loaded once the inputs are known to be usable, so a bad input is refused at once."""
    return load_extractor(pick_device(runtime.device), settings.feature_batch,
                          settings.feature_precision)


def _check_counts(settings: EvalSettings) -> None:
    for name in ("size", "reference_n", "samples_n", "feature_batch"):
        value = getattr(settings, name)
        if value is not None and value < 1:
            raise UsageError(f"`{name}` must be at least 1, got {value}", parameters=[name])


def _reference_path(checkpoint, settings: EvalSettings) -> Path:
    if settings.samples is not None and checkpoint is not None:
        raise UsageError("give either `samples` (image files) or `checkpoint` (to sample from)",
                         parameters=["samples", "checkpoint"])
    if settings.samples is not None and settings.sweeps:
        raise UsageError("`sweep` varies sampling settings; it needs a checkpoint, not `samples`",
                         parameters=["sweep", "samples"])
    if settings.reference is not None:
        return Path(settings.reference)
    if settings.samples is None and checkpoint is None:
        if DEFAULT_REFERENCE.exists():
            return DEFAULT_REFERENCE
        raise UsageError(
            f"the default model's reference set, Fashion-MNIST's test images, is not at "
            f"{DEFAULT_REFERENCE} (apt-get install dataset-fashion-mnist); give `reference`",
            parameters=["reference"])
    raise UsageError("give `reference`: the real images to compare with",
                     parameters=["reference"])


def reference_features(path: Path, size: int, settings: EvalSettings, extractor: Extractor,
                       reporter: Reporter) -> tuple[torch.Tensor, dict[str, Any]]:
    """The reference set's features at `size`: from the cache when its files, the size, the
    limit and the extractor match, else extracted (and cached)."""
    images, _ = read_set(path, size, settings.reference_n, "reference", reporter)
    check_count(images, "reference")
    fields = {"size": size, "limit": settings.reference_n, "extractor": extractor.name,
              "count": len(images.images)}
    key = content_key(images.files, fields)
    found = cached_features(key) if settings.cache else None
    about = {"path": str(path), "images": len(images.images), "size": size, "key": key,
             "cache": str(features_dir()) if settings.cache else None}
    if found is not None and len(found) == len(images.images):
        reporter.info(f"reference features of {path} from the cache ({key[:12]})")
        return found, {**about, "cached": True}
    features = extract(images, extractor, reporter, f"{len(images.images)} reference images")
    if settings.cache:
        store_features(key, features, about)
    return features, {**about, "cached": False}


def scores(real: torch.Tensor, fake: torch.Tensor) -> dict[str, Any]:
    """The figures of one comparison."""
    kid_mean, kid_std, subset = metrics.kid(real, fake)
    pr = metrics.precision_recall(real, fake) if min(len(real), len(fake)) > metrics.K else None
    return {
        "n": len(fake), "fid": metrics.fid(real, fake), "kid_mean": kid_mean,
        "kid_std": kid_std, "kid_subsets": metrics.KID_SUBSETS, "kid_subset_size": subset,
        "precision": pr.precision if pr else None, "recall": pr.recall if pr else None,
        "pr_k": metrics.K, "pr_count": pr.count if pr else None,
    }


def _evaluate_files(settings: EvalSettings, reference: Path, runtime: Runtime,
                    reporter: Reporter) -> EvalResult:
    samples, size = read_set(settings.samples, settings.size, settings.samples_n, "samples",
                             reporter)
    check_count(samples, "samples")
    extractor = _extractor(runtime, settings)
    real, ref_info = reference_features(reference, size, settings, extractor, reporter)
    fake = extract(samples, extractor, reporter, f"{len(samples.images)} samples")
    row = {"setting": {}, "label": "", **scores(real, fake)}
    return EvalResult(ref_info, {"path": str(settings.samples), "images": len(fake),
                                 "size": size}, extractor.name, [row])


def _evaluate_model(checkpoint, settings: EvalSettings, what: tuple, runtime: Runtime,
                    reporter: Reporter) -> EvalResult:
    reference, sampling, outputs = what
    path = resolve_checkpoint(checkpoint, reporter)
    header = read_checkpoint_info(path)
    if settings.size not in (None, header.size):
        raise UsageError(f"`size` {settings.size}: the model makes {header.size}x{header.size} "
                         "images; leave `size` out when sampling", parameters=["size"])
    quiet = Reporter(quiet=True)  # what the checkpoint hands the sampler is said once
    runs = [(setting, run, sampler_for_run(run.sampler, run.options, header,
                                           reporter if i == 0 else quiet))
            for i, (setting, run) in enumerate(combinations(sampling, settings.sweeps))]
    runs = [(setting, with_sampler_steps(run), checked) for setting, run, checked in runs]
    if settings.sweeps:
        refuse_overwrite([plot_path(settings)], settings.force)
    files = None
    if outputs is not None and not settings.sweeps:
        seeds = [sampling.seed + i for i in range(sampling.n)]
        files = plan(outputs, seeds, runs[0][1].steps, header.size)
    extractor = _extractor(runtime, settings)
    real, ref_info = reference_features(reference, header.size, settings, extractor, reporter)
    loaded = load_model(path, runtime, reporter, running_stats=sampling.running_stats,
                        batch_size=max(run.forward_batch for _, run, _ in runs))
    rows, written = [], []
    for setting, run, checked in runs:
        row, images = _one_setting(loaded, (setting, run, checked), real,
                                   (settings, ref_info, extractor), reporter)
        rows.append(row)
        if files is not None and images is not None:
            written = write_images(files, images.float() / 255, list(range(run.n)), run.n)
    plotted = str(plot_sweep(rows, plot_path(settings))) if settings.sweeps else None
    return EvalResult(ref_info, {"checkpoint": str(path), "size": header.size},
                      extractor.name, rows, plotted, written)


def _result_key(loaded: LoadedModel, run: SamplingSettings, checked: CheckedSampler,
                ref_info: dict[str, Any], extractor: Extractor) -> str:
    digest = hashlib.sha256()
    with open(loaded.info.path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    fast = loaded.fast
    fields = {
        "checkpoint": digest.hexdigest(), "sampler": checked.name, "options": checked.options,
        "steps": run.steps, "n": run.n, "seed": run.seed, "batch_size": run.batch_size,
        "running_stats": run.running_stats, "reference": ref_info["key"],
        "extractor": extractor.name, "device": str(loaded.device),
        "fast": [fast.precision, fast.channels_last, fast.compile] if fast else None,
        "metrics": [metrics.KID_SUBSETS, metrics.KID_SUBSET_SIZE, metrics.K],
    }
    return cache.key_of(json.loads(json.dumps(fields, default=str)))


def _one_setting(loaded: LoadedModel, run_of: tuple, real: torch.Tensor, ctx: tuple,
                 reporter: Reporter) -> tuple[dict[str, Any], torch.Tensor | None]:
    """One row: from the sweep cache, or sampled, featurised and scored (and cached)."""
    setting, run, checked = run_of
    settings, ref_info, extractor = ctx
    key = _result_key(loaded, run, checked, ref_info, extractor)
    if settings.cache and settings.sweeps:
        found = cache.recall(RESULTS, key)
        if found is not None:  # the same run may have been stored under another sweep's names
            reporter.info(f"{label(setting)}: from the cache")
            return {**found, "setting": setting, "label": label(setting), "cached": True}, None
    started = time.monotonic()
    if label(setting):
        reporter.info(f"setting {label(setting)}")
    images, nfe = draw(loaded, checked, run, reporter)
    sampled = time.monotonic() - started
    fake = extract(Images(images, [], "samples"), extractor, reporter, f"{run.n} samples")
    row = {"setting": setting, "label": label(setting), "sampler": checked.name,
           "options": {k: str(v) for k, v in checked.options.items()}, "steps": run.steps,
           "seed": run.seed, "nfe_per_image": nfe, **scores(real, fake),
           "sampling_s": round(sampled, 2), "seconds": round(time.monotonic() - started, 2)}
    if settings.cache and settings.sweeps:
        cache.remember(RESULTS, key, row)
    return {**row, "cached": False}, images


def draw(loaded: LoadedModel, checked: CheckedSampler, run: SamplingSettings,
         reporter: Reporter) -> tuple[torch.Tensor, float]:
    """`run.n` samples as uint8 images (rounded as PNG files are written), and the model
    evaluations each image took (forward passes counted, per batch)."""
    calls = [0]
    hook = loaded.model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        generation = generate(loaded.model, checked, shape=loaded.shape, n=run.n,
                              steps=run.steps, seed=run.seed, batch_size=run.batch_size,
                              device=loaded.device, running_stats=run.running_stats,
                              reporter=reporter)
    finally:
        hook.remove()
    images = generation.images.clamp(0, 1).mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return images, calls[0] / len(batches(run.n, run.batch_size or run.n))


def plot_path(settings: EvalSettings) -> Path:
    """Where a sweep's plot goes: `plot`, else eval-sweep.png."""
    return Path(settings.plot or DEFAULT_PLOT)
