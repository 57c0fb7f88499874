"""The overcomplete fully connected autoencoder, with every layer registered and saved."""

from torch import Tensor, nn


class OvercompleteMLP(nn.Module):
    """flatten -> Linear(D, W) -> GELU -> BatchNorm1d -> `layers` x [Linear(W, W) -> GELU]
    -> Linear(W, D) -> reshape. encode ends after the first half of the hidden layers; the
    latent is (B, W). (The original kept its hidden layers in a plain list, so they were never
    trained or saved; here they are an nn.Sequential.)"""

    def __init__(self, channels: int, size: int, width: int, layers: int = 5):
        super().__init__()
        self.shape = (channels, size, size)
        inputs = channels * size * size
        hidden = [nn.Sequential(nn.Linear(width, width), nn.GELU()) for _ in range(layers)]
        split = (layers + 1) // 2
        self.encoder = nn.Sequential(
            nn.Flatten(),
            nn.Linear(inputs, width),
            nn.GELU(),
            nn.BatchNorm1d(width),
            *hidden[:split],
        )
        self.decoder = nn.Sequential(*hidden[split:], nn.Linear(width, inputs))

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, h: Tensor) -> Tensor:
        return self.decoder(h).view(h.shape[0], *self.shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))
