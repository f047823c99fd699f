"""LSUN bedrooms from a folder of exported images."""

from __future__ import annotations

from pathlib import Path

import torch
from jsonargparse.typing import NonNegativeInt, PositiveInt
from torchvision.transforms import v2

from .base import BaseDataModule, ImageFileDataset, missing_dataset_error, split_indices

LSUN_HINT = (
    "LSUN is published as LMDB databases at https://github.com/fyu/lsun: download bedroom_train_lmdb "
    "and export it to images with `python data.py export bedroom_train_lmdb --out_dir <root>`"
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class LSUNBedroomsDataModule(BaseDataModule):
    """LSUN bedrooms: every image under `root` (recursively), shorter side resized then center-cropped.

    y is all zeros (unconditional data). There is no official test split here: the test loader
    reuses the validation hold-out.

    Also takes BaseDataModule's batch_size, num_workers, seed and value_range.

    Args:
        root: folder searched recursively for .jpg/.jpeg/.png/.webp images (e.g. a `data.py export` output).
        image_size: side of the returned square images.
        val_size: images held out for validation, chosen by seed (0 for none).

    Raises:
        FileNotFoundError: the dataset's files are not there (the message lists them and where to get them).
    """

    def __init__(
        self,
        root: str = "data/lsun/bedroom",
        image_size: PositiveInt = 64,
        val_size: NonNegativeInt = 1000,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.image_size = image_size
        self.val_size = val_size
        self.data_shape = (3, image_size, image_size)

    def data_settings(self) -> dict:
        return {"root": self.root, "image_size": self.image_size, "val_size": self.val_size}

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        # Sorted so that the seed-chosen split does not depend on the file system's listing order.
        paths = sorted(
            str(p) for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not paths:
            raise missing_dataset_error(self.root, [f"**/*{suffix}" for suffix in IMAGE_SUFFIXES], LSUN_HINT)
        transform = v2.Compose([v2.Resize(self.image_size, antialias=True), v2.CenterCrop(self.image_size)])
        labels = torch.zeros(len(paths), dtype=torch.long)
        train, val = split_indices(len(paths), self.val_size, self.seed)
        self.train_set, self.val_set = (
            ImageFileDataset([paths[i] for i in part.tolist()], labels[part], transform, self.value_range)
            for part in (train, val)
        )
        self.test_set = self.val_set
