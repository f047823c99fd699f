"""BiGAN/ALI's discriminator on (data, latent) pairs.

ALI (Dumoulin et al. 2017, appendix A) builds D(x, z) from three parts: D(x) maps the data to
features, D(z) maps the latent to features, and D(x, z) classifies their concatenation. Here D(x)
is the factory's discriminator for the data's shape (conv for images, MLP for vectors) and the
other two are MLPs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_modules.nets.dcgan import Normalization
from lightning_modules.nets.factory import build_discriminator
from lightning_modules.nets.mlp import MLP


class JointDiscriminator(nn.Module):
    """(x [B, *data_shape], z [B, latent_dim]) -> logits [B, 1].

    Args:
        data_shape: Shape of one datum.
        latent_dim: Size of z.
        width: Width of the data branch (conv feature maps next to the image, or MLP units).
        hidden: Features each branch hands to the joint head, and the head's hidden units.
        normalization: Normalization of the data branch.
    """

    def __init__(
        self, data_shape: Sequence[int], latent_dim: int, width: int, hidden: int, normalization: Normalization = "none"
    ) -> None:
        super().__init__()
        self.data_branch = build_discriminator(data_shape, width, out_features=hidden, normalization=normalization)
        self.latent_branch = MLP(latent_dim, hidden, hidden=[hidden], activation="leaky_relu")
        self.joint_head = MLP(2 * hidden, 1, hidden=[hidden], activation="leaky_relu")

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        # each branch ends in a linear layer: the nonlinearity makes the head more than a sum of the two
        joint = torch.cat([self.data_branch(x), self.latent_branch(z)], dim=1)
        return self.joint_head(F.leaky_relu(joint, 0.2))
