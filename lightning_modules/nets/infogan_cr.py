"""The dSprites networks of InfoGAN-CR (Lin et al., ICML 2020, appendix; docs/design.md §3).

Generator: FC 128 - FC 4x4x64 - up-conv 64 - 32 - 32 - 1 (4x4, stride 2), ReLU and batch norm.
Discriminator trunk, shared with the Q and CR heads: conv 32-32-64-64 (4x4, stride 2, leaky
ReLU) - FC 128, spectral norm on every layer.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from lightning_modules.nets.dcgan import OutputActivation, output_activation


class InfoGANCRGenerator(nn.Sequential):
    """latent [B, latent_dim] -> image [B, channels, 64, 64]."""

    def __init__(self, latent_dim: int, channels: int = 1, activation: OutputActivation = "tanh") -> None:
        def up(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        super().__init__(
            nn.Linear(latent_dim, 128, bias=False),
            nn.BatchNorm1d(128),
            nn.ReLU(inplace=True),
            nn.Linear(128, 4 * 4 * 64, bias=False),
            nn.BatchNorm1d(4 * 4 * 64),
            nn.ReLU(inplace=True),
            nn.Unflatten(1, (64, 4, 4)),
            *up(64, 64),
            *up(64, 32),
            *up(32, 32),
            nn.ConvTranspose2d(32, channels, 4, 2, 1),
            output_activation(activation),
        )


class InfoGANCRTrunk(nn.Sequential):
    """image [B, channels, 64, 64] -> features [B, 128]; heads (D, Q, CR) sit on top."""

    feature_dim = 128

    def __init__(self, channels: int = 1) -> None:
        def down(c_in: int, c_out: int) -> list[nn.Module]:
            return [spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]

        super().__init__(
            *down(channels, 32),
            *down(32, 32),
            *down(32, 64),
            *down(64, 64),
            nn.Flatten(),
            spectral_norm(nn.Linear(64 * 4 * 4, 128)),
            nn.LeakyReLU(0.2, inplace=True),
        )
