"""The U-Net without residual (skip) connections, as in the seed's code."""

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

    def forward(self, x: Tensor) -> Tensor:
        x = self.up(x)
        if self.duplicate:
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
