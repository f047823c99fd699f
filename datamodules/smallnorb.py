"""SmallNORB (LeCun et al. 2004): grey photographs of 50 toys over 4 known factors; the toy
(instance) within a category is not a factor, so each combination has several images."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from jsonargparse.typing import PositiveInt
from PIL import Image
from torch import Tensor

from .base import missing_dataset_error, uint8_to_range
from .ground_truth import GridGroundTruth, GroundTruthDataModule, damaged_dataset_error

SMALLNORB_URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/ (gunzip the .mat.gz files)"
# The two halves; disentanglement_lib uses both: 10 instances per category.
CHUNKS = ("smallnorb-5x46789x9x18x6x2x96x96-training", "smallnorb-5x01235x9x18x6x2x96x96-testing")
FILE_NAMES = tuple(f"{chunk}-{part}.mat" for chunk in CHUNKS for part in ("dat", "cat", "info"))
FACTOR_NAMES = ("category", "elevation", "azimuth", "lighting")
FACTOR_SIZES = (5, 9, 18, 6)
IMAGE_SIZE = 64
# LeCun's binary matrix format: int32 magic (the element type), int32 ndim, max(3, ndim) int32
# dimensions, then the elements, all little-endian.
MAGIC_DTYPES = {
    0x1E3D4C55: np.uint8,
    0x1E3D4C56: np.int16,
    0x1E3D4C54: np.int32,
    0x1E3D4C51: np.float32,
    0x1E3D4C53: np.float64,
}


def read_binary_matrix(path: Path) -> np.ndarray:
    """The matrix in ``path`` (memory-mapped: the image files are 450 MB each).

    Raises:
        ValueError: a file that is there but unreadable or of another shape (named, with the published file to replace it by).
    """
    header = np.fromfile(path, dtype="<i4", count=2)
    if len(header) < 2 or int(header[0]) not in MAGIC_DTYPES or not 1 <= header[1] <= 16:
        raise damaged_dataset_error(path, "no binary matrix header (magic number, dimensions)", SMALLNORB_URL)
    dtype, ndim = np.dtype(MAGIC_DTYPES[int(header[0])]).newbyteorder("<"), int(header[1])
    dims = np.fromfile(path, dtype="<i4", count=max(3, ndim), offset=8)[:ndim]
    offset = 8 + 4 * max(3, ndim)
    expected = offset + int(np.prod(dims)) * dtype.itemsize
    if len(dims) != ndim or path.stat().st_size != expected:
        raise damaged_dataset_error(path, f"{path.stat().st_size} bytes, its header {list(dims)} needs {expected}", SMALLNORB_URL)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(int(d) for d in dims))


def _resize(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 96, 96] -> [N, 64, 64] with PIL's Lanczos filter, as disentanglement_lib (ANTIALIAS)."""
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS)) for image in images])


def load_chunk(root: Path, chunk: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 64, 64] of the left camera, factor classes [N, 4]) of one half.

    Raises:
        ValueError: a file that is there but unreadable or of another shape (named, with the published file to replace it by).
    """
    dat, cat, info = (read_binary_matrix(root / f"{chunk}-{part}.mat") for part in ("dat", "cat", "info"))
    n = len(dat)
    if dat.ndim != 4 or dat.shape[1:] != (2, 96, 96) or cat.shape != (n,) or info.shape != (n, 4):
        raise damaged_dataset_error(
            root / f"{chunk}-dat.mat", f"dat {list(dat.shape)}, cat {list(cat.shape)}, info {list(info.shape)}; expected [N, 2, 96, 96], [N], [N, 4]", SMALLNORB_URL
        )
    # info columns: instance, elevation 0..8, azimuth 0, 2, ..., 34, lighting 0..5.
    factors = np.stack([cat, info[:, 1], info[:, 2] // 2, info[:, 3]], axis=1).astype(np.int64)
    if ((factors < 0) | (factors >= FACTOR_SIZES)).any() or (info[:, 2] % 2).any():
        raise damaged_dataset_error(root / f"{chunk}-info.mat", f"factor values outside the published ranges {list(FACTOR_SIZES)}", SMALLNORB_URL)
    return _resize(dat[:, 0]), factors


class SmallNORBGroundTruth(GridGroundTruth):
    """Category 5 x elevation 9 x azimuth 18 x lighting 6; an image of a combination shows one of
    its instances (toys), drawn uniformly (as disentanglement_lib's ``SmallNORB``).

    Reads both halves (training and testing: 48,600 images, 10 toys per category) into memory,
    resized to 64x64. A combination with no image in the files (a test's tiny ones) is not
    available.

    Raises:
        FileNotFoundError: the dataset's files are not there (the message lists them and where to get them).
    """

    def __init__(self, root: str | Path, value_range=(-1.0, 1.0), seed: int = 0) -> None:
        root = Path(root)
        missing = [name for name in FILE_NAMES if not (root / name).is_file()]
        if missing:
            raise missing_dataset_error(root, FILE_NAMES, f"SmallNORB is published at {SMALLNORB_URL}; put them there")
        images, factors = zip(*(load_chunk(root, chunk) for chunk in CHUNKS))
        factors = torch.from_numpy(np.concatenate(factors))
        strides = torch.tensor([int(np.prod(FACTOR_SIZES[i + 1 :])) for i in range(len(FACTOR_SIZES))])
        indices = (factors * strides).sum(1)
        super().__init__(FACTOR_NAMES, FACTOR_SIZES, value_range, indices, seed)
        # The images of each combination are the rows order[starts[i] : starts[i] + counts[i]].
        order = indices.argsort(stable=True)
        self._images = torch.from_numpy(np.concatenate(images))[order]
        self._counts = torch.bincount(indices, minlength=self.grid_size)
        self._starts = self._counts.cumsum(0) - self._counts

    def images_for(self, factors: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Images [n, 1, 64, 64] in `value_range` of a random instance each, on the factors' device.

        Raises:
            ValueError: factor combinations that no image in the files has.
        """
        index = self.factors_to_index(factors).cpu()
        counts = self._counts[index]
        if (counts == 0).any():
            raise ValueError(f"{int((counts == 0).sum())} requested factor combinations have no SmallNORB image in the files")
        generator = self.nuisance_generator(factors, generator)
        draw = torch.rand(len(index), generator=generator, device=generator.device).cpu()
        rows = self._starts[index] + (draw * counts).long()
        return uint8_to_range(self._images[rows].to(factors.device).unsqueeze(1), self.value_range)


class SmallNORBDataModule(GroundTruthDataModule):
    """SmallNORB (LeCun et al. 2004) as disentanglement_lib uses it: grey 64x64 (resized from 96x96,
    left camera), factors category 5, elevation 9, azimuth 18, lighting 6; instance drawn at random.

    Args:
        root: directory of the six ``smallnorb-*-{dat,cat,info}.mat`` files (training and testing).
        val_size: combinations held out for validation (and test), chosen by seed.
    """

    data_shape = (1, 64, 64)

    def __init__(self, root: str = "data/smallnorb", val_size: PositiveInt = 500, **kwargs) -> None:
        super().__init__(root, val_size, **kwargs)

    @cached_property
    def ground_truth(self) -> SmallNORBGroundTruth:
        return SmallNORBGroundTruth(self.root, self.value_range, self.seed)
