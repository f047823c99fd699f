"""Datasets with known factors of variation: the factor grid, its images, and their datamodule.

Every dataset of the disentanglement literature is a grid of factor classes (dSprites: shape x
scale x orientation x posX x posY) with images for its combinations. `GridGroundTruth` holds what
the metrics need of one (`factor_sizes`, `sample_factors`, `images_for`; see
``metrics.disentanglement.GroundTruth``); `GroundTruthDataModule` trains on the combinations its
files hold.
"""

from __future__ import annotations

import copy
import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from jsonargparse.typing import PositiveInt
from torch import Tensor

from .base import BaseDataModule, Batch, BatchedDataset, check_value_range, split_indices


def damaged_dataset_error(path: Path, problem: str, where: str) -> ValueError:
    """One message for a file that is there but unreadable: which, what is wrong, and the fix."""
    return ValueError(f"{path} is damaged ({problem}); replace it with the published file: {where}")


class GridGroundTruth(ABC):
    """A grid of factor classes; index = mixed radix of the classes, the first factor most significant.

    A file may hold only part of the grid (tests write tiny ones; the published files hold all of
    it): `available_indices` lists the combinations it holds, and `sample_factors` draws each
    factor from the classes present there, so the metrics, which recombine factors of different
    samples, stay inside a file that holds a product of per-factor classes.

    Stochastic datasets (colour dSprites, SmallNORB's instances, ...) draw what is not a factor
    from the ``generator`` given to `images_for`; without one, from a generator seeded by
    ``seed`` and the requested factors, so the same request gives the same images (the metrics'
    observations are the same at every evaluation) and every row gets its own draw.

    Args:
        factor_names: the factors, most significant first.
        factor_sizes: classes per factor.
        value_range: pixel range of the images.
        available_indices: the grid indices the data holds; None: all of them.
        seed: seed of the draws of `images_for` without a generator.
    """

    def __init__(
        self,
        factor_names: Sequence[str],
        factor_sizes: Sequence[int],
        value_range: Sequence[float] = (-1.0, 1.0),
        available_indices: Tensor | None = None,
        seed: int = 0,
    ) -> None:
        self.factor_names, self.factor_sizes = list(factor_names), [int(size) for size in factor_sizes]
        self.num_factors = len(self.factor_sizes)
        self.value_range = check_value_range(value_range)
        self.seed = seed
        self.grid_size = math.prod(self.factor_sizes)
        self._strides = torch.tensor([math.prod(self.factor_sizes[i + 1 :]) for i in range(self.num_factors)])
        self._sizes = torch.tensor(self.factor_sizes)
        #: The classes of each factor that the data holds: the metrics score only factors with more than one.
        if available_indices is None:
            self.available_indices = torch.arange(self.grid_size)
            self.factor_classes = [torch.arange(size) for size in self.factor_sizes]
        else:
            self.available_indices = available_indices.unique()
            present = self.index_to_factors(self.available_indices)
            self.factor_classes = [present[:, j].unique() for j in range(self.num_factors)]

    def __len__(self) -> int:
        return self.grid_size

    def check_factors(self, factors: Tensor) -> Tensor:
        """``factors`` as a long tensor [n, F] of factor classes.

        Raises:
            ValueError: not of shape [n, F], or (for factors on the host) a class outside its factor's range.
        """
        factors = torch.as_tensor(factors, dtype=torch.long)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(f"factors must have shape [n, {self.num_factors}], got {list(factors.shape)}")
        # checked on the host only: on a GPU the check would wait for all queued work, and there
        # the classes come from the loader's or the metrics' draws, made and checked on the host
        if factors.device.type == "cpu" and ((factors < 0) | (factors >= self._sizes)).any():
            raise ValueError(f"factor classes out of range; sizes are {self.factor_sizes} ({', '.join(self.factor_names)})")
        return factors

    def factors_to_index(self, factors: Tensor) -> Tensor:
        """Row indices [n] of the grid (row-major over ``factor_sizes``) of factor classes [n, F].

        Raises:
            ValueError: as :meth:`check_factors`.
        """
        factors = self.check_factors(factors)
        return (factors * self._strides.to(factors.device)).sum(dim=1)

    def index_to_factors(self, index: Tensor) -> Tensor:
        """Factor classes [n, F] of grid row indices [n]; the inverse of :meth:`factors_to_index`.

        Raises:
            ValueError: an index outside [0, grid_size).
        """
        index = torch.as_tensor(index, dtype=torch.long)
        if ((index < 0) | (index >= self.grid_size)).any():
            raise ValueError(f"grid indices must lie in [0, {self.grid_size})")
        strides, sizes = self._strides.to(index.device), self._sizes.to(index.device)
        return index[:, None] // strides % sizes

    def sample_factors(self, n: int, generator: torch.Generator) -> Tensor:
        """Factor classes [n, F], each uniform over its classes present in the data, on the generator's device."""
        device = generator.device
        columns = [
            classes.to(device)[torch.randint(len(classes), (n,), generator=generator, device=device)]
            for classes in self.factor_classes
        ]
        return torch.stack(columns, dim=1)

    def nuisance_generator(self, factors: Tensor, generator: torch.Generator | None) -> torch.Generator:
        """``generator``, or one seeded by ``seed`` and the bytes of ``factors`` (see the class docstring)."""
        if generator is not None:
            return generator
        digest = hashlib.blake2b(factors.cpu().numpy().tobytes(), digest_size=8, key=str(self.seed).encode())
        return torch.Generator(factors.device).manual_seed(int.from_bytes(digest.digest(), "little") >> 1)

    @abstractmethod
    def images_for(self, factors: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Images [n, C, H, W] in `value_range` of factor classes [n, F], on the factors' device."""


class RowTable:
    """Grid index -> row of a file that holds part (or all) of the grid, with a clear error for the
    rest (on the host; a table moved to a GPU with :meth:`to` looks rows up there unchecked, as
    ``GridGroundTruth.check_factors`` does)."""

    def __init__(self, grid_size: int, indices: Tensor, what: str) -> None:
        self.what = what
        self.rows = torch.full((grid_size,), -1, dtype=torch.long)
        self.rows[indices] = torch.arange(len(indices))

    def to(self, device: torch.device) -> RowTable:
        """This table on ``device`` (a copy, as ``Tensor.to``)."""
        table = copy.copy(self)
        table.rows = self.rows.to(device)
        return table

    def __call__(self, indices: Tensor) -> Tensor:
        rows = self.rows[indices.to(self.rows.device)]
        if rows.device.type == "cpu" and (rows < 0).any():
            raise ValueError(f"{int((rows < 0).sum())} requested factor combinations are not in {self.what}")
        return rows


def read_rows(array, rows: Tensor, chunk: int = 4096) -> np.ndarray:
    """``array[rows]`` for an h5py dataset or memory map: sorted, unique rows read in chunks (h5py's
    fancy indexing needs increasing indices, and both read contiguous runs fastest), then put back in
    the requested order."""
    unique, inverse = np.unique(rows.numpy(), return_inverse=True)
    parts = [array[unique[start : start + chunk]] for start in range(0, len(unique), chunk)]
    return np.concatenate(parts)[inverse]


class GroundTruthDataset(BatchedDataset):
    """Grid indices -> (images [B, C, H, W], factor classes [B, F]), a whole batch per call.

    A stochastic ground truth draws what is not a factor from torch's default generator (seeded
    per worker by the DataLoader): fresh colours, noise or instances every epoch.
    """

    def __init__(self, ground_truth: GridGroundTruth, indices: Tensor) -> None:
        self.ground_truth, self.indices = ground_truth, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        factors = self.ground_truth.index_to_factors(self.indices[torch.as_tensor(indices, dtype=torch.long)])
        return self.ground_truth.images_for(factors, torch.default_generator), factors


class GroundTruthDataModule(BaseDataModule):
    """Trains on the factor combinations the data holds; validation holds out ``val_size`` of them.

    There is no official test split in these datasets: the test loader reuses the validation
    hold-out. Subclasses build `ground_truth` from the files under ``root`` on first use.

    Args:
        root: directory of the dataset's published files.
        val_size: factor combinations held out for validation, chosen by seed.
    """

    def __init__(self, root: str, val_size: PositiveInt = 10000, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        self.val_size = val_size

    ground_truth: GridGroundTruth  # a cached_property of each subclass

    def data_settings(self) -> dict:
        return {"root": self.root, "val_size": self.val_size}

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        available = self.ground_truth.available_indices
        train, val = split_indices(len(available), self.val_size, self.seed)
        self.train_set = GroundTruthDataset(self.ground_truth, available[train])
        self.val_set = self.test_set = GroundTruthDataset(self.ground_truth, available[val])
