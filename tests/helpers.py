"""Tiny data and trainer settings the tests share."""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset


class RandomImages(pl.LightningDataModule):
    """A fixed set of random images in ``value_range`` (the DCGAN contract: ``data_shape``, ``value_range``)."""

    def __init__(
        self,
        size: int = 16,
        channels: int = 1,
        n: int = 64,
        batch_size: int = 8,
        seed: int = 0,
        value_range: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        super().__init__()
        self.data_shape = (channels, size, size)
        self.value_range = value_range
        self.batch_size = batch_size
        generator = torch.Generator().manual_seed(seed)
        low, high = value_range
        self.images = torch.rand(n, *self.data_shape, generator=generator) * (high - low) + low

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


def record_optimize_blocks(model: pl.LightningModule, networks: Sequence[str]) -> list[tuple[tuple[str, ...], set[str]]]:
    """Wrap ``model.optimize`` so that each ``with model.optimize(...)`` block appends (the networks
    it names, the networks among ``networks`` whose parameters changed inside it) to the returned list."""
    blocks: list[tuple[tuple[str, ...], set[str]]] = []
    optimize = model.optimize

    @contextmanager
    def recording(*names: str) -> Iterator:
        before = {n: flat_parameters(getattr(model, n)).clone() for n in networks}
        with optimize(*names) as step:
            yield step
        changed = {n for n in networks if not torch.equal(before[n], flat_parameters(getattr(model, n)))}
        blocks.append((names, changed))

    model.optimize = recording
    return blocks



def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """An idx file as the MNIST site publishes it: big-endian header, then uint8 data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def write_mnist(root: Path, split: str, n: int, compress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Image i carries i in its top-left pixel so a batch can be traced back to the file."""
    rng = np.random.default_rng(n)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    write_idx(root / f"{split}-images-idx3-ubyte{suffix}", images, compress)
    write_idx(root / f"{split}-labels-idx1-ubyte{suffix}", labels, compress)
    return images, labels


def write_celeba(root: Path, partition: Sequence[int] = (1, 0, 2, 0, 1, 0)) -> tuple[list[str], np.ndarray, list[int]]:
    """The standard CelebA layout: solid-grey JPEGs (grey level 40 * (i + 1) mod 256), random
    attributes, and the given official partition (0 train, 1 val, 2 test) per image."""
    from datamodules.celeba import CELEBA_ATTRIBUTES

    n = len(partition)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    attributes = np.random.default_rng(0).choice([-1, 1], size=(n, 40))
    (root / "img_align_celeba").mkdir(parents=True)
    for i, name in enumerate(names):
        Image.new("RGB", (40, 48), ((40 * (i + 1)) % 256,) * 3).save(root / "img_align_celeba" / name)
    rows = [f"{name} " + " ".join(f"{v:2d}" for v in values) for name, values in zip(names, attributes)]
    (root / "list_attr_celeba.txt").write_text(f"{n}\n{' '.join(CELEBA_ATTRIBUTES)}\n" + "\n".join(rows) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, partition)))
    return names, attributes, list(partition)
