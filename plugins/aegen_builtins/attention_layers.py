"""Attention layers of the article's attention models (after lucidrains' diffusion U-Net)."""

import torch
from torch import Tensor, nn


class LinearAttention(nn.Module):
    """Linear attention: q softmaxed over features (scaled by dim**-0.5), k over positions;
    context = sum_n k v^T, out = context^T q; then a 1x1 conv and GroupNorm(1). Memory is
    linear in the number of positions."""

    def __init__(self, channels: int, heads: int = 4, dim: int = 32):
        super().__init__()
        self.heads, self.scale = heads, dim**-0.5
        self.to_qkv = nn.Conv2d(channels, heads * dim * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(heads * dim, channels, 1), nn.GroupNorm(1, channels))

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, -1, h * w) for t in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        return self.to_out(out.reshape(b, -1, h, w))


class DotAttention(nn.Module):
    """Dot-product attention over all positions: softmax(q k^T * dim**-0.5) v, then a 1x1
    conv. Its (heads, N, N) score matrix makes memory grow with the fourth power of the side."""

    def __init__(self, channels: int, heads: int = 4, dim: int = 32):
        super().__init__()
        self.heads, self.scale = heads, dim**-0.5
        self.to_qkv = nn.Conv2d(channels, heads * dim * 3, 1, bias=False)
        self.to_out = nn.Conv2d(heads * dim, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, -1, h * w) for t in self.to_qkv(x).chunk(3, dim=1))
        scores = torch.einsum("bhdi,bhdj->bhij", q * self.scale, k)
        out = torch.einsum("bhij,bhdj->bhdi", scores.softmax(dim=-1), v)
        return self.to_out(out.reshape(b, -1, h, w))


class PreNorm(nn.Sequential):
    """GroupNorm(1) before a layer, with no residual addition around it."""

    def __init__(self, channels: int, layer: nn.Module):
        super().__init__(nn.GroupNorm(1, channels), layer)


def dot_attention_bytes(side: int, heads: int, batch: int = 16) -> int:
    """Bytes of the score and probability matrices of dot-product attention on a side x side
    grid, for a batch (float32)."""
    positions = side * side
    return 2 * batch * heads * positions * positions * 4
