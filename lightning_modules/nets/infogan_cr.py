"""The dSprites networks of InfoGAN-CR (Lin et al., ICML 2020, appendix; docs/design.md §3).

Generator: FC 128 - FC 4x4x64 - up-conv 64 - 32 - 32 - 1 (4x4, stride 2), ReLU and batch norm.
Discriminator trunk, shared with the Q and CR heads: conv 32-32-64-64 (4x4, stride 2, leaky
ReLU) - FC 128, spectral norm on every layer.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from lightning_modules.nets.dcgan import OutputActivation, output_activation


def check_image_size(image_size: int) -> None:
    """Raises ValueError unless ``image_size`` (px) is 64 (InfoGAN-CR's reference networks) or 32 (one stride-2 layer fewer)."""
    if image_size not in (32, 64):
        raise ValueError(f"InfoGAN-CR's networks take image_size 64 (the reference) or 32, got {image_size}; "
                         "set the model's and the datamodule's image_size to one of them")


class InfoGANCRGenerator(nn.Sequential):
    """latent [B, latent_dim] -> image [B, channels, image_size, image_size] (64 as the reference;
    32 leaves out the last 32-channel up-sampling)."""

    def __init__(self, latent_dim: int, channels: int = 1, activation: OutputActivation = "tanh", image_size: int = 64) -> None:
        check_image_size(image_size)
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
            *(up(32, 32) if image_size == 64 else []),
            nn.ConvTranspose2d(32, channels, 4, 2, 1),
            output_activation(activation),
        )


class InfoGANCRTrunk(nn.Sequential):
    """image [B, channels, image_size, image_size] -> features [B, 128]; heads (D, Q, CR) sit on top
    (64 as the reference; 32 leaves out the second 32-channel down-sampling)."""

    feature_dim = 128

    def __init__(self, channels: int = 1, image_size: int = 64) -> None:
        check_image_size(image_size)

        def down(c_in: int, c_out: int) -> list[nn.Module]:
            return [spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]

        super().__init__(
            *down(channels, 32),
            *(down(32, 32) if image_size == 64 else []),
            *down(32, 64),
            *down(64, 64),
            nn.Flatten(),
            spectral_norm(nn.Linear(64 * 4 * 4, 128)),
            nn.LeakyReLU(0.2, inplace=True),
        )
