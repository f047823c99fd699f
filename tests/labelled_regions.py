"""Labelled images whose label is easy to read off: class k is bright in region k of a 2 x 5 grid."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

#: (rows, columns) of region k in a 28 px image: 2 rows of 5 blocks, 14 x 5 px each.
REGIONS = [(slice(14 * (k // 5), 14 * (k // 5) + 14), slice(5 * (k % 5) + 1, 5 * (k % 5) + 6)) for k in range(10)]


def region_images(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` images [n, 1, 28, 28] in [0, 1] (dim noise, region k at +0.8) and their labels k [n]."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(10, (n,), generator=generator)
    images = torch.rand(n, 1, 28, 28, generator=generator) * 0.2
    for k, (rows, columns) in enumerate(REGIONS):
        images[labels == k, :, rows, columns] += 0.8
    return images, labels


def brightest_region(images: Tensor) -> Tensor:
    """The region k with the highest mean intensity, per image."""
    return torch.stack([images[:, :, rows, columns].mean((1, 2, 3)) for rows, columns in REGIONS], 1).argmax(1)


class RegionImages(pl.LightningDataModule):
    """``region_images`` as (x, y) training batches, with the datamodule contract (data_shape, value_range)."""

    data_shape = (1, 28, 28)
    value_range = (0.0, 1.0)

    def __init__(self, n: int = 512, batch_size: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.images, self.labels = region_images(n, seed)
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.images, self.labels), batch_size=self.batch_size, shuffle=True, drop_last=True)
