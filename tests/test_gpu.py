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


@pytest.mark.parametrize("precision", ["fp32", "bf16", "auto"])
def test_each_precision_runs_on_cuda_within_tolerance(tiny_checkpoint, precision):
    from aegen.precision import TOLERANCE, prepare

    loaded = load_checkpoint(tiny_checkpoint, "cuda")
    x = torch.rand(8, 3, SIZE, SIZE, device="cuda")
    with torch.inference_mode():
        reference = loaded.model.train()(x).clone()
    model, fast = prepare(loaded.model, "cuda", precision, shape=(3, SIZE, SIZE))
    with torch.inference_mode():
        out = model(x)
    assert out.dtype == torch.float32 and out.shape == x.shape and torch.isfinite(out).all()
    if precision == "auto":  # never bf16 without native support, never over the tolerance
        assert fast.precision == "fp32" or torch.cuda.get_device_capability()[0] >= 8
        assert (out - reference).abs().max().item() <= TOLERANCE[fast.precision] + 1e-3
    assert fast.precision == (precision if precision != "auto" else fast.precision)


def test_compiled_bf16_generation_on_cuda_repeats(tiny_checkpoint):
    from aegen.precision import prepare

    loaded = load_checkpoint(tiny_checkpoint, "cuda")
    model, fast = prepare(loaded.model, "cuda", "bf16", compile=True, shape=(3, SIZE, SIZE))
    a = generate(model, shape=(3, SIZE, SIZE), n=4, steps=5, seed=0, device="cuda")
    b = generate(model, shape=(3, SIZE, SIZE), n=4, steps=5, seed=0, device="cuda")
    assert fast.compile and torch.isfinite(a.images).all()
    assert a.images.min() >= 0 and a.images.max() <= 1
    torch.testing.assert_close(a.images, b.images)
