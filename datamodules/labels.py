"""Labels to generate for: the ``predict`` data of a conditional model (CVAE, latent constraints)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from jsonargparse.typing import PositiveInt
from torch.utils.data import DataLoader, TensorDataset


class LabelsDataModule(pl.LightningDataModule):
    """Each label repeated ``samples_per_label`` times, in batches ``(labels,)``::

        python -m lightning_modules predict --config configs/cvae_mnist.yaml --ckpt_path <ckpt> \\
            --data datamodules.LabelsDataModule --data.labels='[0, 1, 2]'

    Args:
        labels: Digit classes (``[0, 1, 2]``) or attribute vectors (``[[0, 1, ...], ...]``, 40 values
            each for CelebA).
        samples_per_label: Images generated per label.
        batch_size: Labels per predict batch.
    """

    def __init__(self, labels: list[int] | list[list[int]], samples_per_label: PositiveInt = 8, batch_size: PositiveInt = 64) -> None:
        super().__init__()
        self.labels = torch.tensor(labels, dtype=torch.long).repeat_interleave(samples_per_label, dim=0)
        self.batch_size = batch_size

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.labels), batch_size=self.batch_size, shuffle=False)
