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


def write_mnist(root, n: int = 16, split: str = "train", gz: bool = False, seed: int = 0) -> tuple:
    """idx files as the MNIST site publishes them (big-endian header, then uint8 data)."""
    import gzip
    import struct
    from pathlib import Path

    import numpy as np

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    with opener(root / f"{split}-images-idx3-ubyte{suffix}", "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
    with opener(root / f"{split}-labels-idx1-ubyte{suffix}", "wb") as f:
        f.write(struct.pack(">II", 2049, n) + labels.tobytes())
    return images, labels


def write_celeba(root, partitions=(0, 0, 0, 0, 0, 0, 1, 2), size: tuple[int, int] = (178, 218), seed: int = 0) -> list:
    """The standard CelebA layout: img_align_celeba/*.jpg, list_attr_celeba.txt, list_eval_partition.txt."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    root = Path(root)
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"{i + 1:06d}.jpg" for i in range(len(partitions))]
    attributes = rng.choice([-1, 1], size=(len(names), 40))
    for name in names:
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "img_align_celeba" / name)
    from datamodules.celeba import CELEBA_ATTRIBUTES

    header = " ".join(CELEBA_ATTRIBUTES)
    rows = [f"{name} " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, attributes)]
    (root / "list_attr_celeba.txt").write_text(f"{len(names)}\n{header}\n" + "\n".join(rows) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, partitions)))
    return attributes.tolist()
