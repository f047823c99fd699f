"""Networks chosen by the shape of one datum, so a model runs on images and on 2-D toy data alike.

``data_shape`` is ``(channels, size, size)`` with size 28, 32 or 64 (DCGAN-style conv nets) or
``(features,)`` (MLPs with ``depth`` hidden layers of ``width`` units, for 2-D mixtures).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from lightning_modules.nets.dcgan import (
    ConvDiscriminator,
    ConvEncoder,
    ConvGenerator,
    Normalization,
    OutputActivation,
    output_activation,
    resolution_stages,
)
from lightning_modules.nets.mlp import MLP

#: Hidden layers of the MLPs built for vector data.
VECTOR_DEPTH = 3


def check_data_shape(data_shape: Sequence[int]) -> tuple[int, ...]:
    """``data_shape`` as a tuple, or a ValueError naming the shapes the networks support."""
    shape = tuple(int(d) for d in data_shape)
    if len(shape) == 1 and shape[0] > 0:
        return shape
    if len(shape) == 3 and shape[0] > 0 and shape[1] == shape[2]:
        resolution_stages(shape[1])  # raises for sizes other than 28, 32, 64
        return shape
    raise ValueError(
        f"data_shape must be [channels, size, size] with size 28, 32 or 64, or [features] for vector data; "
        f"got {list(data_shape)}"
    )


def image_shape(data_shape: Sequence[int], model: str, sizes: Sequence[int] = (28, 32, 64)) -> tuple[int, int]:
    """(channels, size) of ``data_shape`` = [channels, size, size] for a model whose networks are
    conv nets only, or a ValueError naming the shapes ``model`` takes."""
    shape = tuple(int(d) for d in data_shape)
    if len(shape) == 3 and shape[0] > 0 and shape[1] == shape[2] and shape[1] in sizes:
        return shape[0], shape[1]
    raise ValueError(
        f"{model} takes images: data_shape must be [channels, size, size] with size {' or '.join(map(str, sizes))}; "
        f"got {list(data_shape)}"
    )


def is_image(data_shape: Sequence[int]) -> bool:
    """Whether ``data_shape`` is an image's ([channels, size, size]) rather than a vector's ([features]).

    Raises:
        ValueError: a shape that is neither (see :func:`check_data_shape`).
    """
    return len(check_data_shape(data_shape)) == 3


class VectorDiscriminator(nn.Module):
    """vector -> [B, out_features], with ``features(x)`` and ``feature_dim`` like ConvDiscriminator."""

    def __init__(self, in_features: int, width: int, out_features: int = 1, normalization: Normalization = "none") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for n_in in [in_features] + [width] * (VECTOR_DEPTH - 1):
            linear = nn.Linear(n_in, width)
            layers.append(spectral_norm(linear) if normalization == "spectral" else linear)
            if normalization == "batch":
                layers.append(nn.BatchNorm1d(width))
            elif normalization == "layer":
                layers.append(nn.LayerNorm(width))
            layers.append(nn.LeakyReLU(0.2))
        self.trunk = nn.Sequential(*layers)
        self.feature_dim = width
        head = nn.Linear(width, out_features)
        self.head = spectral_norm(head) if normalization == "spectral" else head

    def features(self, x: Tensor) -> Tensor:
        """The last hidden features [B, feature_dim] of vectors ``x`` [B, in_features]."""
        return self.trunk(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))


def build_generator(
    latent_dim: int, data_shape: Sequence[int], width: int = 64, activation: OutputActivation | None = None
) -> nn.Module:
    """latent [B, latent_dim] -> data [B, *data_shape]. ``activation`` defaults to tanh for images
    (data in [-1, 1]) and identity for vectors (unbounded toy data)."""
    shape = check_data_shape(data_shape)
    if len(shape) == 3:
        return ConvGenerator(latent_dim, shape[1], shape[0], width, activation=activation or "tanh")
    mlp = MLP(latent_dim, shape[0], hidden=[width] * VECTOR_DEPTH)
    return nn.Sequential(mlp, output_activation(activation or "identity"))


def build_discriminator(
    data_shape: Sequence[int], width: int = 64, out_features: int = 1, normalization: Normalization = "batch"
) -> nn.Module:
    """data -> [B, out_features]; ``features(x)`` gives the last hidden features ([B, feature_dim])."""
    shape = check_data_shape(data_shape)
    if len(shape) == 3:
        return ConvDiscriminator(shape[1], shape[0], width, out_features, normalization)
    return VectorDiscriminator(shape[0], width, out_features, normalization)


def build_encoder(data_shape: Sequence[int], out_features: int, width: int = 64, normalization: Normalization = "batch") -> nn.Module:
    """data -> [B, out_features] (e.g. a posterior's mean and log-variance)."""
    shape = check_data_shape(data_shape)
    if len(shape) == 3:
        return ConvEncoder(shape[1], shape[0], width, out_features, normalization)
    return VectorDiscriminator(shape[0], width, out_features, normalization)
