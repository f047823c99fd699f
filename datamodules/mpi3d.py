"""MPI3D (Gondal et al. 2019): 1,036,800 RGB images of a robot arm's object over 7 known factors."""

from __future__ import annotations

import zipfile
import zlib
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from filelock import FileLock
from jsonargparse.typing import PositiveInt
from torch import Tensor

from .base import missing_dataset_error, uint8_to_range
from .ground_truth import GridGroundTruth, GroundTruthDataModule, RowTable, damaged_dataset_error, read_rows

VARIANTS = ("toy", "realistic", "real")
MPI3D_URL = "https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/mpi3d_{variant}.npz (see https://github.com/rr-learning/disentanglement_dataset)"
FACTOR_NAMES = ("object_color", "object_shape", "object_size", "camera_height", "background_color", "horizontal_axis", "vertical_axis")
FACTOR_SIZES = (6, 6, 2, 3, 3, 40, 40)
GRID_SIZE = int(np.prod(FACTOR_SIZES))
# Rows copied per step when the npz is extracted (about 100 MB).
_EXTRACT_ROWS = 8192


def extract_images(npz_path: Path, npy_path: Path, where: str) -> None:
    """Write the npz's ``images`` array to ``npy_path`` (streamed, so never all in memory).

    The published npz files are compressed, and only an uncompressed .npy can be memory-mapped.
    Written under a lock and renamed into place, so concurrent processes (DDP) extract once.

    Raises:
        ValueError: a file that is there but unreadable or of another shape (named, with the published file to replace it by).
    """
    with FileLock(f"{npy_path}.lock"):
        if npy_path.is_file():
            return
        partial = npy_path.with_name(npy_path.name + ".partial")
        problem = None
        try:
            with zipfile.ZipFile(npz_path) as archive, archive.open("images.npy") as member:
                version = np.lib.format.read_magic(member)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran_order, dtype = read_header(member)
                if fortran_order or len(shape) != 4 or shape[1:] != (64, 64, 3) or dtype != np.uint8:
                    problem = f"images is {dtype} {list(shape)}, expected uint8 [N, 64, 64, 3]"
                else:
                    _copy_rows(member, np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=shape))
        except (zipfile.BadZipFile, KeyError, EOFError, OSError, ValueError, zlib.error) as error:
            problem = f"no readable array 'images': {error}"
        if problem is not None:
            partial.unlink(missing_ok=True)
            raise damaged_dataset_error(npz_path, problem, where)
        partial.rename(npy_path)


def _copy_rows(member, target: np.memmap) -> None:
    """Stream the rows of an array's data from ``member`` into ``target``, a chunk at a time."""
    row_bytes = int(np.prod(target.shape[1:]))
    for start in range(0, len(target), _EXTRACT_ROWS):
        count = min(_EXTRACT_ROWS, len(target) - start)
        chunk = member.read(count * row_bytes)
        if len(chunk) != count * row_bytes:
            raise EOFError(f"images ends after {start + len(chunk) // row_bytes} of {len(target)} rows")
        target[start : start + count] = np.frombuffer(chunk, np.uint8).reshape(count, *target.shape[1:])
    target.flush()


class MPI3DGroundTruth(GridGroundTruth):
    """The MPI3D grid, memory-mapped from ``mpi3d_<variant>.npy``, the ``images`` array of the
    published ``mpi3d_<variant>.npz`` (uint8 [1036800, 64, 64, 3], grid order, no labels).

    The npz is compressed, so the first use extracts its images once to the .npy beside it
    (12.7 GB; the npz may then be deleted). A file with fewer rows holds the first rows of the
    grid (a test's tiny one).

    Raises:
        ValueError: an unknown ``variant``.
        FileNotFoundError: the dataset's files are not there (the message lists them and where to get them).
        ValueError: a file that is there but unreadable or of another shape (named, with the published file to replace it by).
    """

    def __init__(self, root: str | Path, variant: Literal["toy", "realistic", "real"] = "toy", value_range=(-1.0, 1.0)) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"MPI3D variant must be one of {VARIANTS}, got {variant!r}")
        root, where = Path(root), MPI3D_URL.format(variant=variant)
        npz_path, npy_path = root / f"mpi3d_{variant}.npz", root / f"mpi3d_{variant}.npy"
        if not npy_path.is_file():
            if not npz_path.is_file():
                raise missing_dataset_error(root, [npz_path.name], f"MPI3D {variant} is published at {where}; put it there (its images are extracted once to {npy_path.name} beside it)")
            extract_images(npz_path, npy_path, where)
        self.path = npy_path
        try:
            self._images = np.load(npy_path, mmap_mode="r")
        except (OSError, ValueError) as error:
            raise damaged_dataset_error(npy_path, f"not a readable .npy: {error}; delete it to extract it again from {npz_path.name}", where) from error
        shape = self._images.shape
        if len(shape) != 4 or shape[1:] != (64, 64, 3) or self._images.dtype != np.uint8 or shape[0] > GRID_SIZE:
            raise damaged_dataset_error(npy_path, f"images is {self._images.dtype} {list(shape)}, expected uint8 [{GRID_SIZE}, 64, 64, 3]", where)
        strides = [int(np.prod(FACTOR_SIZES[j + 1 :])) for j in range(len(FACTOR_SIZES))]
        if not any(shape[0] % stride == 0 and shape[0] // stride <= size for stride, size in zip(strides, FACTOR_SIZES)):
            # The first rows of the grid are a product of classes only when they end on a factor's boundary.
            raise damaged_dataset_error(npy_path, f"{shape[0]} images, the published grid has {GRID_SIZE} (6 x 6 x 2 x 3 x 3 x 40 x 40)", where)
        indices = torch.arange(shape[0])
        super().__init__(FACTOR_NAMES, FACTOR_SIZES, value_range, indices)
        self._rows = RowTable(GRID_SIZE, indices, str(npy_path))

    def __getstate__(self) -> dict:
        """Pickled (spawned workers) without the map, which would pickle every image."""
        return {**self.__dict__, "_images": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _images=np.load(state["path"], mmap_mode="r"))

    def images_for(self, factors: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Images [n, 3, 64, 64] in `value_range`, on the factors' device."""
        pixels = torch.from_numpy(read_rows(self._images, self._rows(self.factors_to_index(factors))))
        return uint8_to_range(pixels.to(factors.device).permute(0, 3, 1, 2), self.value_range)


class MPI3DDataModule(GroundTruthDataModule):
    """MPI3D toy, realistic or real (Gondal et al. 2019): RGB 64x64, factors object colour 6, object
    shape 6, object size 2, camera height 3, background colour 3, horizontal axis 40, vertical axis 40.

    Args:
        root: directory of ``mpi3d_<variant>.npz`` (or its extracted ``mpi3d_<variant>.npy``).
        variant: toy (simple renderings), realistic (realistic renderings) or real (photographs).
        val_size: combinations held out for validation (and test), chosen by seed.
    """

    data_shape = (3, 64, 64)

    def __init__(
        self,
        root: str = "data/mpi3d",
        variant: Literal["toy", "realistic", "real"] = "toy",
        val_size: PositiveInt = 10000,
        **kwargs,
    ) -> None:
        super().__init__(root, val_size, **kwargs)
        self.variant = variant

    def data_settings(self) -> dict:
        return {**super().data_settings(), "variant": self.variant}

    @cached_property
    def ground_truth(self) -> MPI3DGroundTruth:
        return MPI3DGroundTruth(self.root, self.variant, self.value_range)
