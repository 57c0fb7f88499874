"""The original article's attention U-Net (no time input, no residual additions) and attention
autoencoders."""

from torch import Tensor, nn

from .attention_layers import DotAttention, LinearAttention, PreNorm


class Block(nn.Sequential):
    """[3x3 conv -> GroupNorm -> SiLU] x 2: the diffusion U-Net's block, minus its residual."""

    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.GroupNorm(groups, cout),
            nn.SiLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.GroupNorm(groups, cout),
            nn.SiLU(),
        )


class AttentionUNet(nn.Module):
    """encode: 7x7 conv -> `depth` x [Block, linear attention, 4x4 stride-2 conv] -> middle
    [Block, dot-product attention, Block]; latent (B, width*2**depth, H/2**depth, W/2**depth).
    decode: `depth` x [4x4 stride-2 transposed conv, Block, linear attention] -> 1x1 conv.
    No skip connections and no residual additions."""

    def __init__(self, channels: int, width: int, depth: int, heads: int, dim: int, groups: int):
        super().__init__()
        dims = [width * 2**i for i in range(depth + 1)]
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 7, padding=3)]
        for cin, cout in zip(dims, dims[1:]):
            layers += [
                Block(cin, cout, groups),
                PreNorm(cout, LinearAttention(cout, heads, dim)),
                nn.Conv2d(cout, cout, 4, stride=2, padding=1),
            ]
        deepest = dims[-1]
        layers += [
            Block(deepest, deepest, groups),
            PreNorm(deepest, DotAttention(deepest, heads, dim)),
            Block(deepest, deepest, groups),
        ]
        self.encoder = nn.Sequential(*layers)
        ups: list[nn.Module] = []
        for cout, cin in reversed(list(zip(dims, dims[1:]))):
            ups += [
                nn.ConvTranspose2d(cin, cin, 4, stride=2, padding=1),
                Block(cin, cout, groups),
                PreNorm(cout, LinearAttention(cout, heads, dim)),
            ]
        self.decoder = nn.Sequential(*ups, nn.Conv2d(width, channels, 1))

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, h: Tensor) -> Tensor:
        return self.decoder(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


class AttentionAutoencoder(nn.Module):
    """encode: [3x3 conv to `features` maps] -> one attention layer (latent (B, features, H, W),
    or (B, channels, H, W) without convs); decode: [3x3 conv back to the image channels]."""

    def __init__(self, channels: int, kind: str, convs: bool, features: int, heads: int, dim: int):
        super().__init__()
        inner = features if convs else channels
        attention = LinearAttention if kind == "linear" else DotAttention
        self.conv_in = nn.Conv2d(channels, features, 3, padding=1) if convs else nn.Identity()
        self.attention = attention(inner, heads, dim)
        self.conv_out = nn.Conv2d(features, channels, 3, padding=1) if convs else nn.Identity()

    def encode(self, x: Tensor) -> Tensor:
        return self.attention(self.conv_in(x))

    def decode(self, h: Tensor) -> Tensor:
        return self.conv_out(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))
