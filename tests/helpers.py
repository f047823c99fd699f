"""Tiny data and trainer settings the tests share."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class RandomImages(pl.LightningDataModule):
    """A fixed set of random images in [-1, 1] (the DCGAN contract: ``data_shape``, ``value_range``)."""

    def __init__(self, size: int = 16, channels: int = 1, n: int = 64, batch_size: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.data_shape = (channels, size, size)
        self.value_range = (-1.0, 1.0)
        self.batch_size = batch_size
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, *self.data_shape, generator=generator) * 2 - 1

    def train_dataloader(self) -> DataLoader:
        dataset = TensorDataset(self.images, torch.zeros(len(self.images), dtype=torch.long))
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=True, drop_last=True)


def quiet_trainer(**kwargs) -> pl.Trainer:
    settings = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return pl.Trainer(**{**settings, **kwargs})


def flat_parameters(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])
