"""DCGAN-style convolutional networks (Radford et al. 2016) for 28, 32 and 64 px images.

Each resolution is a start size and a number of stride-2 stages:
64 px = 4 -> 8 -> 16 -> 32 -> 64, 32 px = 4 -> 8 -> 16 -> 32, 28 px (MNIST) = 7 -> 14 -> 28.
Feature maps double at each stage away from the image, starting at ``width`` next to it.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

Normalization = Literal["batch", "layer", "spectral", "none"]
OutputActivation = Literal["tanh", "sigmoid", "identity"]

_STAGES = {64: (4, 4), 32: (4, 3), 28: (7, 2)}


def resolution_stages(image_size: int) -> tuple[int, int]:
    """(start size, number of stride-2 stages) for a supported image size.

    Raises:
        ValueError: an image size other than 28, 32 or 64.
    """
    if image_size not in _STAGES:
        raise ValueError(f"image_size must be one of {sorted(_STAGES)}, got {image_size}")
    return _STAGES[image_size]


def output_activation(name: OutputActivation) -> nn.Module:
    """The module of an output activation name: "tanh" (images in [-1, 1]), "sigmoid" ([0, 1]) or "identity" (logits, means)."""
    return {"tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(), "identity": nn.Identity()}[name]


class ConvGenerator(nn.Sequential):
    """latent [B, latent_dim] -> image [B, channels, image_size, image_size]."""

    def __init__(
        self,
        latent_dim: int,
        image_size: int = 64,
        channels: int = 3,
        width: int = 64,
        activation: OutputActivation = "tanh",
    ) -> None:
        start, stages = resolution_stages(image_size)
        features = width * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            nn.Unflatten(1, (latent_dim, 1, 1)),
            nn.ConvTranspose2d(latent_dim, features, start, 1, 0, bias=False),
            nn.BatchNorm2d(features),
            nn.ReLU(inplace=True),
        ]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(features, features // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(features // 2),
                nn.ReLU(inplace=True),
            ]
            features //= 2
        layers += [nn.ConvTranspose2d(features, channels, 4, 2, 1), output_activation(activation)]
        super().__init__(*layers)


class ConvDiscriminator(nn.Module):
    """image -> [B, out_features]; ``features(x)`` gives the flattened last conv features.

    ``normalization``: "batch" (DCGAN), "layer" (WGAN-GP's critic: batch norm would couple the
    samples whose per-sample gradient the penalty constrains), "spectral" (Miyato et al. 2018) or "none".
    """

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        width: int = 64,
        out_features: int = 1,
        normalization: Normalization = "batch",
    ) -> None:
        super().__init__()
        start, stages = resolution_stages(image_size)
        layers: list[nn.Module] = []
        in_features, features = channels, width
        for stage in range(stages):
            conv = nn.Conv2d(in_features, features, 4, 2, 1, bias=normalization in ("spectral", "none"))
            layers.append(spectral_norm(conv) if normalization == "spectral" else conv)
            if stage > 0 and normalization == "batch":
                layers.append(nn.BatchNorm2d(features))
            elif stage > 0 and normalization == "layer":
                layers.append(nn.GroupNorm(1, features))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            in_features, features = features, features * 2
        self.trunk = nn.Sequential(*layers, nn.Flatten())
        self.feature_dim = in_features * start * start
        head = nn.Linear(self.feature_dim, out_features)
        self.head = spectral_norm(head) if normalization == "spectral" else head

    def features(self, x: Tensor) -> Tensor:
        """The flattened last conv features [B, feature_dim] of images ``x``."""
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))


class ConvEncoder(ConvDiscriminator):
    """image -> [B, out_features] (e.g. a posterior's mean and log-variance): the discriminator's
    trunk, with batch norm by default."""
