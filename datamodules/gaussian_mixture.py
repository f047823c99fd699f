"""2-D Gaussian mixtures (ring / grid): fast toy data for loss tests and mode-collapse checks."""

from __future__ import annotations

import math
from typing import Literal

import torch
from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import Tensor

from .base import BaseDataModule, TensorPairDataset


def mixture_centers(layout: Literal["ring", "grid"], num_components: int, radius: float) -> Tensor:
    """Centres [K, 2]: evenly spaced on a circle of `radius`, or a square grid spanning ±`radius`.

    Raises:
        ValueError: a grid layout of a ``num_components`` that is not a perfect square.
    """
    if layout == "ring":
        angles = torch.arange(num_components, dtype=torch.float64) * (2.0 * math.pi / num_components)
        return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()
    side = math.isqrt(num_components)
    if side * side != num_components:
        raise ValueError(f"a grid layout needs a perfect-square num_components, got {num_components}")
    ticks = torch.linspace(-radius, radius, side) if side > 1 else torch.zeros(1)
    return torch.cartesian_prod(ticks, ticks)


class GaussianMixtureDataModule(BaseDataModule):
    """Samples of an equal-weight mixture of isotropic 2-D Gaussians; y is the component index.

    The points are not images, so `value_range` is None. Validation (and test) data are
    num_samples // 10 further draws from the same seeded generator.

    Args:
        layout: "ring" puts the centres on a circle, "grid" on a square lattice.
        num_components: number of Gaussians (a perfect square for "grid").
        radius: ring radius, or half the side of the grid.
        std: standard deviation of every component.
        num_samples: number of training points.
        batch_size: samples per batch.
        num_workers: DataLoader worker processes (0 loads in the main process).
        seed: seed of the generated points.
    """

    def __init__(
        self,
        layout: Literal["ring", "grid"] = "ring",
        num_components: PositiveInt = 8,
        radius: PositiveFloat = 2.0,
        std: PositiveFloat = 0.02,
        num_samples: PositiveInt = 100000,
        batch_size: PositiveInt = 256,
        **kwargs,
    ) -> None:
        super().__init__(batch_size=batch_size, value_range=None, **kwargs)
        self.std = std
        self.num_samples = num_samples
        self.centers = mixture_centers(layout, num_components, radius)
        self.data_shape = (2,)

    def data_settings(self) -> dict:
        return {"centers": self.centers.tolist(), "std": self.std, "num_samples": self.num_samples}

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        generator = torch.Generator().manual_seed(self.seed)
        self.train_set = self._sample(self.num_samples, generator)
        self.val_set = self.test_set = self._sample(max(1, self.num_samples // 10), generator)

    def _sample(self, n: int, generator: torch.Generator) -> TensorPairDataset:
        components = torch.randint(len(self.centers), (n,), generator=generator)
        points = self.centers[components] + self.std * torch.randn(n, 2, generator=generator)
        return TensorPairDataset(points, components)
