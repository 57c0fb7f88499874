"""What each step reads: `flip` (seeded mirror images, resumable), and under torchrun each
rank reading only its share of every epoch from the decoded cache."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import load_file

from aegen import fitting
from aegen.checkpoint import read_checkpoint_info
from aegen.console import Reporter
from aegen.distributed import Context
from aegen.errors import UsageError
from aegen.imagestore import ImageFile, npy_header
from aegen.models import build_model, resolve_config
from aegen.plugins import get_registry
from aegen.precision import choose
from aegen.settings import TrainSettings
from aegen.training import train

from .conftest import SIZE, TINY, run_aegen

FAST = dict(config=TINY, size=SIZE, batch_size=8, device="cpu", precision="fp32")


def test_flip_mirrors_a_fair_coin_per_image_fixed_by_seed_epoch_and_rank():
    first = fitting.flips_of_epoch(0, 0, 10_000)
    assert torch.equal(first, fitting.flips_of_epoch(0, 0, 10_000))
    assert 0.48 < first.float().mean() < 0.52
    others = [fitting.flips_of_epoch(1, 0, 10_000), fitting.flips_of_epoch(0, 1, 10_000),
              fitting.flips_of_epoch(0, 0, 10_000, rank=1)]
    assert all(not torch.equal(first, other) for other in others)


def test_flip_is_reproducible_recorded_and_resumes_exactly(image_folder, tmp_path):
    plain = train(image_folder, tmp_path / "plain.safetensors", epochs=2, seed=1, **FAST)
    a = train(image_folder, tmp_path / "a.safetensors", epochs=2, seed=1, flip=True, **FAST)
    b = train(image_folder, tmp_path / "b.safetensors", epochs=2, seed=1, flip=True, **FAST)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.losses != plain.losses
    info = read_checkpoint_info(a.path)
    assert info.provenance["flip"] is True and info.training_state["flip"] is True
    assert "flip" not in read_checkpoint_info(plain.path).provenance  # old files stay as they were

    part = tmp_path / "part.safetensors"
    train(image_folder, part, epochs=1, seed=1, flip=True, **FAST)
    with pytest.raises(UsageError, match="`flip` false differs from the resumed run's true"):
        train(image_folder, part, epochs=2, resume=part, flip=False, device="cpu")
    resumed = train(image_folder, part, epochs=2, resume=part, device="cpu")  # keeps flip
    assert resumed.losses == a.losses
    whole, got = load_file(str(a.path)), load_file(str(part))
    assert all(torch.equal(whole[k], got[k]) for k in whole)


def test_flip_on_the_command_line(image_folder, tmp_path):
    out = tmp_path / "m.safetensors"
    done = run_aegen("train", image_folder, "--set", "width=4", "--set", "depth=2", "--size",
                     SIZE, "--batch-size", 8, "--epochs", 1, "--seed", 0, "--flip", "--out", out)
    assert done.returncode == 0, done.stderr
    assert read_checkpoint_info(out).training_state["flip"] is True


class RecordingFile(ImageFile):
    """The decoded cache, noting every image read."""

    def __init__(self, path):
        super().__init__(path)
        self.read: list[int] = []

    def __getitem__(self, index):
        self.read += torch.as_tensor(index).reshape(-1).tolist()
        return super().__getitem__(index)


@dataclass
class Rank(Context):
    """Rank `rank` of `world`, for one process to play: the loss is its own."""

    def mean(self, value):
        return value


def test_each_rank_reads_only_its_share_of_each_epoch_from_the_cache(tmp_path):
    count, batch, world = 40, 4, 2
    pixels = torch.randint(0, 256, (count, 1, SIZE, SIZE), dtype=torch.uint8)
    path = tmp_path / "images.npy"
    path.write_bytes(npy_header(tuple(pixels.shape)) + pixels.numpy().tobytes())
    settings = TrainSettings(batch_size=batch, seed=7, epochs=2, flip=True).with_defaults()
    device = torch.device("cpu")
    for epoch in range(2):
        shares = []
        for rank in range(world):
            torch.manual_seed(0)
            model = build_model("unet", resolve_config("unet", TINY, 1, SIZE))
            learner = fitting.Learner(
                model=model, optimizer=torch.optim.Adam(model.parameters()),
                objective=get_registry().objective("copy"), objective_options={},
                fast=choose("fp32", device, False, False), settings=settings, device=device)
            stored = RecordingFile(path)
            fitting.train_epoch(learner, stored, epoch, Reporter(quiet=True),
                                Rank(rank=rank, world=world))
            assert stored.read == fitting.epoch_shard(count, batch, 7, epoch, rank, world).tolist()
            shares.append(set(stored.read))
        assert not shares[0] & shares[1] and len(shares[0]) == len(shares[1]) == count // world
