"""CelebA from its standard on-disk layout.

torchvision's CelebA class also md5-checks the identity, bounding-box and landmark files,
which we never use, so we read the attribute and partition lists ourselves.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from jsonargparse.typing import PositiveInt
from torchvision.transforms import v2

from .base import BaseDataModule, ImageFileDataset, missing_dataset_error

CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
IMAGE_DIR = "img_align_celeba"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
# Official attribute order (line 2 of list_attr_celeba.txt); known before any file is read so a
# conditional model can size itself at construction.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby",
    "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male",
    "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
    "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair",
    "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip
_SPLITS = {"train": 0, "val": 1, "test": 2}  # list_eval_partition.txt codes


def read_attributes(path: Path) -> tuple[list[str], np.ndarray]:
    """Filenames and their ±1 attributes mapped to 0/1 ([N, 40] int64).

    Raises:
        ValueError: a file not in the official layout (header, row count, values other than ±1).
    """
    lines = path.read_text().splitlines()
    names = lines[1].split() if len(lines) > 1 else []
    if names != list(CELEBA_ATTRIBUTES):
        raise ValueError(f"{path}: line 2 must name the 40 CelebA attributes in the official order")
    rows = [line.split() for line in lines[2:] if line.strip()]
    if len(rows) != int(lines[0]) or any(len(row) != 1 + len(names) for row in rows):
        raise ValueError(f"{path}: expected {lines[0].strip()} rows of a filename and {len(names)} values")
    values = np.array([row[1:] for row in rows], dtype=np.int64)
    if not np.isin(values, (-1, 1)).all():
        raise ValueError(f"{path}: attribute values must be -1 or 1")
    return [row[0] for row in rows], (values > 0).astype(np.int64)


def read_partition(path: Path) -> dict[str, int]:
    """CelebA's ``list_eval_partition.txt``: file name -> split code (0 train, 1 validation, 2 test)."""
    rows = (line.split() for line in path.read_text().splitlines() if line.strip())
    return {filename: int(code) for filename, code in rows}


class CelebADataModule(BaseDataModule):
    """Aligned CelebA faces, center-cropped and resized; y holds the 40 attributes as 0/1.

    Train/validation/test follow the official list_eval_partition.txt.

    Also takes BaseDataModule's batch_size, num_workers, seed and value_range.

    Args:
        root: directory holding img_align_celeba/, list_attr_celeba.txt and list_eval_partition.txt.
        image_size: side of the returned square images.
        crop_size: side of the center crop taken from the 178x218 aligned image before resizing.

    Raises:
        FileNotFoundError: the dataset's files are not there (the message lists them and where to get them). ValueError: a partition file that leaves images out, or attribute files not in the official layout.
    """

    def __init__(
        self,
        root: str = "data/celeba",
        image_size: PositiveInt = 64,
        crop_size: PositiveInt = 148,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.image_size = image_size
        self.crop_size = crop_size
        self.attribute_names = list(CELEBA_ATTRIBUTES)
        self.data_shape = (3, image_size, image_size)

    def data_settings(self) -> dict:
        return {"root": self.root, "image_size": self.image_size, "crop_size": self.crop_size}

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        expected = (IMAGE_DIR, ATTRIBUTE_FILE, PARTITION_FILE)
        if not ((self.root / IMAGE_DIR).is_dir() and all((self.root / f).is_file() for f in expected[1:])):
            raise missing_dataset_error(
                self.root,
                [f"{IMAGE_DIR}/*.jpg", ATTRIBUTE_FILE, PARTITION_FILE],
                f"CelebA is published at {CELEBA_URL} (Align&Cropped images, Anno/{ATTRIBUTE_FILE}, "
                f"Eval/{PARTITION_FILE})",
            )
        filenames, attributes = read_attributes(self.root / ATTRIBUTE_FILE)
        partition = read_partition(self.root / PARTITION_FILE)
        unlisted = [f for f in filenames if f not in partition]
        if unlisted:
            raise ValueError(
                f"{self.root / PARTITION_FILE} does not list {len(unlisted)} images, e.g. {unlisted[0]}"
            )
        present = set(os.listdir(self.root / IMAGE_DIR))  # one listing, not 200k stat calls
        absent = [f for f in filenames if f not in present]
        if absent:
            raise FileNotFoundError(
                f"{self.root / IMAGE_DIR} lacks {len(absent)} of the {len(filenames)} images that {ATTRIBUTE_FILE} "
                f"lists, e.g. {absent[0]}: extract img_align_celeba again from {CELEBA_URL}"
            )
        codes = np.array([partition[f] for f in filenames])
        transform = v2.Compose([v2.CenterCrop(self.crop_size), v2.Resize(self.image_size, antialias=True)])
        for split, code in _SPLITS.items():
            members = np.flatnonzero(codes == code)
            dataset = ImageFileDataset(
                [str(self.root / IMAGE_DIR / filenames[i]) for i in members],
                torch.from_numpy(attributes[members]),
                transform,
                self.value_range,
            )
            setattr(self, f"{split}_set", dataset)
