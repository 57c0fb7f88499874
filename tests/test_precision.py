"""The fast path: each precision runs, stays within its tolerance of fp32, is deterministic, and
`auto` only picks what the machine has natively."""

from __future__ import annotations

import pytest
import torch

from aegen.checkpoint import load_checkpoint
from aegen.defaults import default_checkpoint
from aegen.errors import UsageError
from aegen.precision import TOLERANCE, accelerate, choose, native_bf16, unwrap


@pytest.fixture(scope="module")
def trained():
    return load_checkpoint(default_checkpoint()).model.train()


def noisy_batch(seed=0):
    return torch.randn(32, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 0.2 + 0.7


def test_auto_takes_bf16_only_where_the_device_has_it_natively():
    fast = choose("auto", "cpu")
    native, why = native_bf16("cpu")
    assert fast.precision == ("bf16" if native else "fp32")
    assert why in fast.reason and fast.reason.startswith("auto:")
    assert fast.precision != "fp16"  # never chosen without a measured case for it


def test_unknown_precisions_are_usage_errors():
    with pytest.raises(UsageError, match="--precision must be one of auto, fp32, bf16, fp16"):
        choose("int8", "cpu")


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_each_precision_stays_within_its_tolerance_of_fp32(trained, precision):
    x = noisy_batch()
    with torch.inference_mode():
        reference = trained(x).clone()
        fast = accelerate(trained, choose(precision, "cpu"))
        out = fast(x)
        again = fast(x)
    assert out.shape == x.shape and out.dtype == torch.float32 and out.is_contiguous()
    assert torch.isfinite(out).all()
    assert (out - reference).abs().max().item() <= TOLERANCE[precision]
    assert torch.equal(out, again)  # deterministic per setting
    assert unwrap(fast) is trained


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_encode_and_decode_take_the_same_path(trained, precision):
    fast = accelerate(trained, choose(precision, "cpu"))
    x = noisy_batch(1)
    with torch.inference_mode():
        h = fast.encode(x)
        assert h.dtype == torch.float32
        assert torch.allclose(fast.decode(h), fast(x), atol=TOLERANCE[precision] + 1e-6)


def test_compile_gives_the_eager_result(trained):
    fast = accelerate(trained, choose("fp32", "cpu", compile=True))
    x = noisy_batch(2)
    with torch.inference_mode():
        assert torch.allclose(fast(x), trained(x), atol=1e-4)
