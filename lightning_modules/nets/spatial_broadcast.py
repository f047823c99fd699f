"""The spatial broadcast decoder (Watters et al. 2019, "Spatial Broadcast Decoder: A Simple
Architecture for Learning Disentangled Representations in VAEs", arXiv:1901.07017, Fig. 1).

The code is tiled over a grid two pixels larger per layer than the image, two channels of x and
y coordinates in [-1, 1] are appended, and stride-1 3x3 convolutions without padding shrink it to
the image. Every pixel sees the whole code plus where it is, so moving an object along x or y is a
change of one input per axis; a transposed-convolution decoder has to learn position from
scratch. The paper measures that this gives a VAE axis-aligned position latents on dSprites-like
data that a DCGAN-style decoder entangles.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from lightning_modules.nets.dcgan import OutputActivation, output_activation


class SpatialBroadcastDecoder(nn.Module):
    """latent [B, latent_dim] -> image [B, channels, image_size, image_size].

    Args:
        latent_dim: Size of the code.
        image_size: Height and width of the output (any size).
        channels: Output channels.
        width: Feature maps of each hidden convolution (the paper: 64).
        layers: Hidden 3x3 convolutions, each followed by ReLU (the paper: 4).
        padding: "valid" (the paper: no padding, the grid starts ``2 * layers`` pixels larger than
            the image) or "same" (zero padding on a grid of the image's size: fewer pixels per
            layer, ~0.6x the time at 32 px with 3 layers, the quick start's choice).
        activation: Output activation ("identity": logits or means).

    Raises:
        ValueError: ``layers`` below 1.
    """

    def __init__(
        self,
        latent_dim: int,
        image_size: int = 64,
        channels: int = 1,
        width: int = 64,
        layers: int = 4,
        padding: Literal["valid", "same"] = "valid",
        activation: OutputActivation = "identity",
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"a spatial broadcast decoder needs at least one hidden convolution, got layers={layers}")
        grid = torch.linspace(-1.0, 1.0, image_size + 2 * layers * (padding == "valid"))
        y, x = torch.meshgrid(grid, grid, indexing="ij")
        self.register_buffer("coordinates", torch.stack([x, y])[None], persistent=False)
        hidden: list[nn.Module] = []
        features = latent_dim + 2
        for _ in range(layers):
            hidden += [nn.Conv2d(features, width, 3, padding=1 if padding == "same" else 0), nn.ReLU(inplace=True)]
            features = width
        self.net = nn.Sequential(*hidden, nn.Conv2d(width, channels, 1), output_activation(activation))

    def forward(self, latent: Tensor) -> Tensor:
        batch, size = len(latent), self.coordinates.shape[-1]
        tiled = latent[:, :, None, None].expand(-1, -1, size, size)
        return self.net(torch.cat([tiled, self.coordinates.expand(batch, -1, -1, -1)], dim=1))
