"""Multi-layer perceptrons for 2-D toy data and latent-space models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn


class MLP(nn.Sequential):
    """in_features -> hidden... -> out_features, with ``activation`` between layers (none after the last)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (128, 128),
        activation: Literal["relu", "leaky_relu", "elu"] = "relu",
    ) -> None:
        make_activation = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "elu": nn.ELU}[activation]
        sizes = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(make_activation())
        super().__init__(*layers)
