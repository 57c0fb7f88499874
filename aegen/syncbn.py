"""Batch norm whose statistics span every rank's batch on the CPU (gloo), where PyTorch's own
SyncBatchNorm refuses to run ("SyncBatchNorm layers only work with GPU modules")."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.nn.modules.batchnorm import _BatchNorm


class _Sum(torch.autograd.Function):
    """The sum over ranks of a tensor; the gradient of each rank's part is the sum of the
    ranks' gradients (every rank's loss depends on every part)."""

    @staticmethod
    def forward(ctx, tensor, group):
        ctx.group = group
        out = tensor.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None

def all_reduce(tensor, group):
    """The sum of `tensor` over the ranks of `group`, differentiable."""
    return _Sum.apply(tensor, group)

class GlobalBatchNorm(_BatchNorm):
    """A BatchNorm{1,2,3}d whose training statistics span every rank's batch (CPU/gloo)."""

    def __init__(self, source: _BatchNorm, group) -> None:
        super().__init__(
            source.num_features,
            source.eps,
            source.momentum,
            source.affine,
            source.track_running_stats,
        )
        self.group = group
        self._expected_dim = source._check_input_dim
        # Share, not copy: the optimizer and the checkpoint see the very same tensors.
        if source.affine:
            self.weight, self.bias = source.weight, source.bias
        if source.track_running_stats:
            self.running_mean = source.running_mean
            self.running_var = source.running_var
            self.num_batches_tracked = source.num_batches_tracked
        self.training = source.training

    def _check_input_dim(self, input):
        self._expected_dim(input)

    def forward(self, x):
        self._check_input_dim(x)
        use_batch = self.training or not self.track_running_stats
        if not use_batch:
            return super().forward(x)
        with torch.autocast(x.device.type, enabled=False):  # statistics in fp32
            return self._forward_fp32(x.float()).to(x.dtype)

    def _forward_fp32(self, x):
        dims = [0, *range(2, x.dim())]
        local = x.new_full((1,), x.numel() // x.shape[1])  # images x pixels on this rank
        sums = all_reduce(torch.cat([x.sum(dims), local]), group=self.group)
        total, count = sums[:-1], sums[-1]
        mean = total / count
        shape = [1, -1] + [1] * (x.dim() - 2)
        centred = x - mean.view(shape)
        var = all_reduce(centred.pow(2).sum(dims), group=self.group) / count
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                if self.momentum is None:
                    factor = 1.0 / float(self.num_batches_tracked)
                else:
                    factor = self.momentum
                n = float(count)
                unbiased = var.detach() * (n / max(n - 1, 1))
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out
