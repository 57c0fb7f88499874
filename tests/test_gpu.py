"""The same train-and-sample path on a CUDA device (skipped without one)."""

from __future__ import annotations

import pytest
import torch

from aegen.checkpoint import load_checkpoint
from aegen.sampling import generate
from aegen.training import train

from .conftest import SIZE, TINY

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_train_and_generate_on_cuda(image_folder, tmp_path):
    out = tmp_path / "gpu.safetensors"
    result = train(
        image_folder, out, config=TINY, size=SIZE, epochs=2, batch_size=8, seed=0, device="cuda"
    )
    assert result.losses[1] < result.losses[0]
    model = load_checkpoint(out, "cuda").model
    a = generate(model, shape=(3, SIZE, SIZE), n=4, steps=5, seed=0, device="cuda")
    b = generate(model, shape=(3, SIZE, SIZE), n=4, steps=5, seed=0, device="cuda")
    assert a.images.device.type == "cpu" and torch.isfinite(a.images).all()
    torch.testing.assert_close(a.images, b.images)
