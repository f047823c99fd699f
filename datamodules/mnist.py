"""MNIST read straight from its idx files.

torchvision's MNIST class wants uncompressed files in its own `<root>/MNIST/raw` layout (and
tries to download otherwise), so we parse the idx format ourselves: plain or gzipped, wherever
the files are.
"""

from __future__ import annotations

import gzip
import math
import zlib
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from jsonargparse.typing import PositiveInt
from torch import Tensor

from .base import BaseDataModule, TensorPairDataset, missing_dataset_error, split_indices, uint8_to_range

MNIST_URL = "http://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)"
_UNSIGNED_BYTE = 0x08


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An idx array of unsigned bytes with `ndim` dimensions; header and size are validated.

    Raises:
        ValueError: a file that is unreadable, truncated, or not an unsigned-byte idx file of that rank.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # truncated or corrupt gzip stream
        raise ValueError(f"{path} is not a readable idx file: {err}") from err
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: {len(raw)} bytes, shorter than its {header}-byte header")
    magic, expected_magic = int.from_bytes(raw[:4], "big"), _UNSIGNED_BYTE << 8 | ndim
    if magic != expected_magic:
        raise ValueError(
            f"{path}: magic number {magic:#010x}, expected {expected_magic:#010x} (unsigned bytes, {ndim}-d)"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = header + math.prod(shape)
    if len(raw) != size:
        raise ValueError(
            f"{path} has {len(raw)} bytes but its header {list(shape)} implies {size}: truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


class MNISTDataModule(BaseDataModule):
    """MNIST digits from the idx files `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`.

    The test loader always reads the t10k files.

    Also takes BaseDataModule's batch_size, num_workers, seed and value_range.

    Args:
        root: directory holding the idx files, plain or .gz.
        image_size: 28 keeps the digits as they are; 32 zero-pads them by 2 pixels per side.
        train_split: which file pair is training data; "t10k" lets you train when only the
            test files are available (the test loader then overlaps training data).
        val_size: images of the training split held out for validation, chosen by seed.
    """

    def __init__(
        self,
        root: str = "data/MNIST/raw",
        image_size: Literal[28, 32] = 28,
        train_split: Literal["train", "t10k"] = "train",
        val_size: PositiveInt = 5000,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.image_size = image_size
        self.train_split = train_split
        self.val_size = val_size
        self.data_shape = (1, image_size, image_size)

    def data_settings(self) -> dict:
        return {"root": self.root, "image_size": self.image_size, "train_split": self.train_split, "val_size": self.val_size}

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self.train_set is None:
            images, labels = self._load(self.train_split)
            train, val = split_indices(len(images), self.val_size, self.seed)
            self.train_set = self._dataset(images[train], labels[train])
            self.val_set = self._dataset(images[val], labels[val])
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = self._dataset(*self._load("t10k"))

    def _dataset(self, images: Tensor, labels: Tensor) -> TensorPairDataset:
        return TensorPairDataset(images, labels, partial(uint8_to_range, value_range=self.value_range))

    def _files(self, split: str) -> list[Path | None]:
        """The image and label file of ``split`` (plain or .gz), None where missing."""
        stems = (f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte")
        return [next((p for p in (self.root / s, self.root / f"{s}.gz") if p.is_file()), None) for s in stems]

    def _load(self, split: str) -> tuple[Tensor, Tensor]:
        """uint8 images [N, 1, S, S] and int64 labels [N] of one file pair."""
        found = self._files(split)
        if None in found:
            where = f"MNIST is published at {MNIST_URL}"
            if split == "train" and None not in self._files("t10k"):
                where += (
                    f"; the t10k files are in '{self.root}': to train on them, set `train_split: t10k`"
                    " in the data's init_args (or pass --data.init_args.train_split=t10k)"
                )
            stems = (f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte")
            raise missing_dataset_error(self.root, [f"{s}[.gz]" for s in stems], where)
        image_path, label_path = found
        try:
            images, labels = read_idx(image_path, ndim=3), read_idx(label_path, ndim=1)
        except ValueError as error:
            raise ValueError(f"{error}; download it again from {MNIST_URL}") from error
        if images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise ValueError(
                f"{image_path} ({list(images.shape)}) and {label_path} ({len(labels)} labels) do not match"
            )
        if labels.max(initial=0) > 9:
            raise ValueError(f"{label_path} holds labels above 9")
        pixels = torch.from_numpy(images).unsqueeze(1)
        pad = (self.image_size - 28) // 2
        return F.pad(pixels, (pad, pad, pad, pad)), torch.from_numpy(labels).long()
