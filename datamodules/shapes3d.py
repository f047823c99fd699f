"""3D Shapes (Kim & Mnih 2018): 480,000 RGB renderings of an object in a room over 6 known factors."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from jsonargparse.typing import PositiveInt
from torch import Tensor

from .base import missing_dataset_error, uint8_to_range
from .ground_truth import GridGroundTruth, GroundTruthDataModule, RowTable, damaged_dataset_error, read_rows

H5_NAME = "3dshapes.h5"
SHAPES3D_URL = "https://storage.googleapis.com/3d-shapes/3dshapes.h5 (see https://github.com/google-deepmind/3d-shapes)"
FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
# The values of each factor's classes in `labels` (the dataset's README): hues k/10, scale
# linspace(0.75, 1.25, 8), shape 0..3, orientation linspace(-30, 30, 15) degrees.
FACTOR_VALUES = (
    *(np.arange(10) / 10,) * 3,
    np.linspace(0.75, 1.25, 8),
    np.arange(4.0),
    np.linspace(-30.0, 30.0, 15),
)
GRID_SIZE = int(np.prod(FACTOR_SIZES))


def _label_classes(labels: np.ndarray, path: Path) -> np.ndarray:
    """Factor classes [N, 6] of the float `labels`.

    The published file holds every combination once, in grid order: its classes are the ranks of
    each column's values (whatever their exact values). A file with part of the grid (a test's)
    is matched to the published values.
    """
    if len(labels) == GRID_SIZE:
        classes = np.stack([np.unique(column.round(6), return_inverse=True)[1] for column in labels.T], axis=1)
        counts = classes.max(axis=0) + 1
        if tuple(counts) != FACTOR_SIZES:
            raise damaged_dataset_error(path, f"labels hold {list(counts)} values per factor, not {list(FACTOR_SIZES)}", SHAPES3D_URL)
        return classes
    distances = [np.abs(column[:, None] - values[None]) for column, values in zip(labels.T, FACTOR_VALUES)]
    classes = np.stack([distance.argmin(axis=1) for distance in distances], axis=1)
    if any((distance.min(axis=1) > 1e-3).any() for distance in distances):
        raise damaged_dataset_error(path, "labels hold values that are not the published factor values", SHAPES3D_URL)
    return classes


class Shapes3DGroundTruth(GridGroundTruth):
    """The 3D Shapes grid read from ``3dshapes.h5``: keys ``images`` (uint8 [N, 64, 64, 3]) and
    ``labels`` (float64 [N, 6], the factor values in `FACTOR_NAMES` order).

    Images are read with h5py as they are asked for (rows sorted, in chunks); with ``in_memory``
    the file's 5.9 GB of images are read once. The file may hold part of the grid (a test's tiny
    one); the published one holds it all, in grid order.

    Raises:
        FileNotFoundError: the dataset's files are not there (the message lists them and where to get them).
        ValueError: a file that is there but unreadable or of another shape (named, with the published file to replace it by).
    """

    def __init__(self, h5_path: str | Path, value_range=(-1.0, 1.0), in_memory: bool = False) -> None:
        import h5py

        self.path = Path(h5_path)
        if not self.path.is_file():
            raise missing_dataset_error(self.path.parent, [self.path.name], f"3D Shapes is published at {SHAPES3D_URL}; put it there")
        try:
            with h5py.File(self.path, "r") as file:
                images, labels = file["images"], file["labels"][()]
                shape, dtype = images.shape, images.dtype
                self._memory = torch.from_numpy(images[()]) if in_memory else None
        except (OSError, KeyError) as error:
            raise damaged_dataset_error(self.path, f"no readable HDF5 datasets 'images' and 'labels': {error}", SHAPES3D_URL) from error
        if len(shape) != 4 or shape[1:] != (64, 64, 3) or dtype != np.uint8 or labels.shape != (shape[0], 6):
            raise damaged_dataset_error(
                self.path, f"images {dtype} {list(shape)} and labels {list(labels.shape)}, expected uint8 [N, 64, 64, 3] and [N, 6]", SHAPES3D_URL
            )
        classes = torch.from_numpy(_label_classes(labels, self.path))
        indices = (classes * torch.tensor([int(np.prod(FACTOR_SIZES[i + 1 :])) for i in range(6)])).sum(1)
        if len(indices.unique()) != len(indices):
            raise damaged_dataset_error(self.path, f"labels repeat {len(indices) - len(indices.unique())} factor combinations", SHAPES3D_URL)
        super().__init__(FACTOR_NAMES, FACTOR_SIZES, value_range, indices)
        self._rows = RowTable(GRID_SIZE, indices, str(self.path))
        self._file, self._pid = None, None

    def _images(self):
        """The h5py dataset, opened once per process (HDF5 handles do not survive a fork)."""
        if self._pid != os.getpid():
            import h5py

            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._file["images"]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_pid": None}

    def images_for(self, factors: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Images [n, 3, 64, 64] in `value_range`, on the factors' device."""
        rows = self._rows(self.factors_to_index(factors))
        pixels = self._memory[rows] if self._memory is not None else torch.from_numpy(read_rows(self._images(), rows))
        return uint8_to_range(pixels.to(factors.device).permute(0, 3, 1, 2), self.value_range)


class Shapes3DDataModule(GroundTruthDataModule):
    """3D Shapes (Kim & Mnih 2018; Burgess & Kim 2018): RGB 64x64, factors floor hue 10, wall hue 10,
    object hue 10, scale 8, shape 4, orientation 15.

    Args:
        root: directory of ``3dshapes.h5``.
        val_size: combinations held out for validation (and test), chosen by seed.
        in_memory: read all images into memory once (5.9 GB) instead of from the file per batch.
    """

    data_shape = (3, 64, 64)

    def __init__(self, root: str = "data/3dshapes", val_size: PositiveInt = 10000, in_memory: bool = False, **kwargs) -> None:
        super().__init__(root, val_size, **kwargs)
        self.in_memory = in_memory

    @cached_property
    def ground_truth(self) -> Shapes3DGroundTruth:
        return Shapes3DGroundTruth(self.root / H5_NAME, self.value_range, self.in_memory)
