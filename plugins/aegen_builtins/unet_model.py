"""The U-Net without residual (skip) connections, as in the original article's code, and the
DDPM-style U-Net with concatenated skips (for the comparison with diffusion)."""

import torch
from torch import Tensor, nn


class DoubleConv(nn.Sequential):
    """[3x3 conv (no bias) -> BatchNorm2d -> ReLU] x 2."""

    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """Halve the resolution, then DoubleConv."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.MaxPool2d(2), DoubleConv(cin, cout))


class Up(nn.Module):
    """Double the resolution with a transposed conv, then DoubleConv, with no skip input.

    With `duplicate`, the upsampled tensor is concatenated with itself where a U-Net would
    concatenate the encoder's tensor: the original code's layer shapes (about 31.0 M parameters
    at width 64, depth 4). Without it the upsampled tensor feeds DoubleConv directly.
    """

    def __init__(self, cin: int, duplicate: bool):
        super().__init__()
        half = cin // 2
        self.duplicate = duplicate
        self.up = nn.ConvTranspose2d(cin, half, kernel_size=2, stride=2)
        self.conv = DoubleConv(cin if duplicate else half, half)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        x = self.up(x)
        if skip is not None:  # the skip U-Net's: the encoder's tensor of this resolution
            x = torch.cat([x, skip], 1)
        elif self.duplicate:
            x = x.repeat(1, 2, 1, 1)
        return self.conv(x)


class UNet(nn.Module):
    """encode: input DoubleConv + `depth` down blocks -> (B, width * 2**depth, H / 2**depth, ...).

    decode: `depth` up blocks + a 1x1 output conv, no output activation.
    """

    def __init__(self, channels: int = 3, width: int = 64, depth: int = 4, duplicate: bool = False):
        super().__init__()
        widths = [width * 2**i for i in range(depth + 1)]
        self.inc = DoubleConv(channels, width)
        self.downs = nn.Sequential(*(Down(a, b) for a, b in zip(widths, widths[1:])))
        self.ups = nn.Sequential(*(Up(c, duplicate) for c in reversed(widths[1:])))
        self.outc = nn.Conv2d(width, channels, kernel_size=1)

    def encode(self, x: Tensor) -> Tensor:
        return self.downs(self.inc(x))

    def decode(self, h: Tensor) -> Tensor:
        return self.outc(self.ups(h))

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


class HiddenUNet(UNet):
    """UNet with a purely linear bottleneck after the last down block (no activations):

    conv(k4, s2, p1) to `squeeze` channels -> flatten -> Linear(., hidden) -> Linear(hidden, code)
    is the encoder's end; Linear(code, hidden) -> Linear(hidden, .) -> reshape ->
    ConvTranspose2d(k4, s2, p1) back to the bottleneck is the decoder's start. The latent is the
    (B, code) vector. Sizes follow the image size: the bottleneck is size / 2**depth wide, the
    squeezed grid half that. (The original's transposed conv had stride 4 from a grid sized for
    one resolution; mirroring the down conv works at every size.)
    """

    def __init__(
        self,
        channels: int,
        width: int,
        depth: int,
        size: int,
        code: int = 100,
        hidden: int = 500,
        squeeze: int = 256,
    ):
        super().__init__(channels=channels, width=width, depth=depth)
        deepest = width * 2**depth
        side = size // 2**depth  # bottleneck side; even
        self.squeeze_shape = (squeeze, side // 2, side // 2)
        self.to_code = nn.Sequential(
            nn.Conv2d(deepest, squeeze, kernel_size=4, stride=2, padding=1),
            nn.Flatten(),
            nn.Linear(squeeze * (side // 2) ** 2, hidden),
            nn.Linear(hidden, code),
        )
        self.from_code = nn.Sequential(
            nn.Linear(code, hidden),
            nn.Linear(hidden, squeeze * (side // 2) ** 2),
        )
        self.expand = nn.ConvTranspose2d(squeeze, deepest, kernel_size=4, stride=2, padding=1)

    def encode(self, x: Tensor) -> Tensor:
        return self.to_code(super().encode(x))

    def decode(self, h: Tensor) -> Tensor:
        grid = self.from_code(h).view(h.shape[0], *self.squeeze_shape)
        return super().decode(self.expand(grid))


class SkipDowns(nn.ModuleList):
    """The down blocks, keeping each level: the flattened concatenation of them all."""

    def forward(self, x: Tensor) -> Tensor:
        levels = [x]
        for down in self:
            levels.append(down(levels[-1]))
        return torch.cat([t.flatten(1) for t in levels], 1)


class SkipUps(nn.ModuleList):
    """The up blocks, each given the level of its resolution from the flattened latent."""

    def __init__(self, ups: nn.Module, shapes: list[tuple[int, int, int]]):
        super().__init__(ups)
        self.shapes = shapes

    def forward(self, h: Tensor) -> Tensor:
        sizes = [c * a * b for c, a, b in self.shapes]
        levels = [part.reshape(len(h), *shape)
                  for part, shape in zip(h.split(sizes, 1), self.shapes)]
        x = levels.pop()
        for up in self:
            x = up(x, levels.pop())
        return x


class SkipUNet(UNet):
    """The U-Net with concatenated skip connections (DDPM-style, no time conditioning): each up
    block concatenates the encoder's tensor of its resolution to the upsampled one, so its layers
    are `UNet(duplicate=True)`'s, under the same names.

    The latent is everything the decoder sees: the encoder's tensor at every level and the
    bottleneck, flattened and concatenated, (B, sum of C*H*W). A walk that perturbs it perturbs
    the skips too. Such a model can pass its input straight through, so train it with an
    objective that corrupts the input (`denoise`), not `copy`.
    """

    def __init__(self, channels: int, width: int, depth: int, size: int):
        super().__init__(channels=channels, width=width, depth=depth, duplicate=True)
        shapes = [(width * 2**i, size // 2**i, size // 2**i) for i in range(depth + 1)]
        self.downs = SkipDowns(self.downs)
        self.ups = SkipUps(self.ups, shapes)
