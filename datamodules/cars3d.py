"""Cars3D (Reed et al. 2015): renderings of 183 car models over elevation, azimuth and model."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.io
import torch
from jsonargparse.typing import PositiveInt
from PIL import Image
from torch import Tensor

from .base import missing_dataset_error, uint8_to_range
from .ground_truth import GridGroundTruth, GroundTruthDataModule, RowTable, damaged_dataset_error

CARS3D_URL = "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz (its data/cars folder; see http://www.scottreed.info)"
FILE_PATTERN = "car_*_mesh.mat"
FACTOR_NAMES = ("elevation", "azimuth", "object")
FACTOR_SIZES = (4, 24, 183)
IMAGE_SIZE = 64


def load_car(path: Path) -> np.ndarray:
    """The 96 views of one car, uint8 [24 azimuths, 4 elevations, 64, 64, 3], resized from 128x128
    with PIL's Lanczos filter as disentanglement_lib (``thumbnail``, ANTIALIAS).

    Raises:
        ValueError: a file that is there but unreadable or of another shape (named, with the published file to replace it by).
    """
    try:
        views = scipy.io.loadmat(path)["im"]
    except (scipy.io.matlab.MatReadError, OSError, ValueError, KeyError, TypeError) as error:
        raise damaged_dataset_error(path, f"no readable MATLAB array 'im': {error}", CARS3D_URL) from error
    if views.shape != (128, 128, 3, 24, 4) or views.dtype != np.uint8:
        raise damaged_dataset_error(path, f"'im' is {views.dtype} {list(views.shape)}, expected uint8 [128, 128, 3, 24, 4]", CARS3D_URL)
    views = np.moveaxis(views, (3, 4), (0, 1))
    resized = [np.asarray(Image.fromarray(np.ascontiguousarray(view)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS)) for view in views.reshape(-1, 128, 128, 3)]
    return np.stack(resized).reshape(24, 4, IMAGE_SIZE, IMAGE_SIZE, 3)


class Cars3DGroundTruth(GridGroundTruth):
    """Elevation 4 x azimuth 24 x object 183, one RGB image each, read into memory (216 MB).

    The object class is the position of the car's file among the sorted ``car_*_mesh.mat`` names
    (disentanglement_lib takes the directory's listing order, which is not fixed). A folder with
    fewer files (a test's) holds the first objects.

    Raises:
        FileNotFoundError: the dataset's files are not there (the message lists them and where to get them).
        ValueError: a file that is there but unreadable or of another shape (named, with the published file to replace it by).
    """

    def __init__(self, root: str | Path, value_range=(-1.0, 1.0)) -> None:
        root = Path(root)
        paths = sorted(root.glob(FILE_PATTERN))
        if not paths:
            raise missing_dataset_error(
                root, ["car_001_mesh.mat", "...", "car_199_mesh.mat"], f"Cars3D's 183 files (numbered 001 to 199, with gaps) are published in {CARS3D_URL}; put them there"
            )
        if len(paths) > FACTOR_SIZES[2]:
            raise damaged_dataset_error(root, f"{len(paths)} {FILE_PATTERN} files, the dataset has {FACTOR_SIZES[2]}", CARS3D_URL)
        cars = np.stack([load_car(path) for path in paths], axis=2)  # [azimuth, elevation, object, H, W, 3]
        elevation, azimuth, car = torch.meshgrid(torch.arange(4), torch.arange(24), torch.arange(len(paths)), indexing="ij")
        factors = torch.stack([elevation.flatten(), azimuth.flatten(), car.flatten()], dim=1)
        self._images = torch.from_numpy(cars.transpose(1, 0, 2, 5, 3, 4).reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE).copy())
        indices = (factors * torch.tensor([24 * 183, 183, 1])).sum(1)
        super().__init__(FACTOR_NAMES, FACTOR_SIZES, value_range, indices)
        self._rows = RowTable(self.grid_size, indices, f"the {len(paths)} car files in {root}")

    def images_for(self, factors: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Images [n, 3, 64, 64] in `value_range`, on the factors' device."""
        rows = self._rows(self.factors_to_index(factors))
        return uint8_to_range(self._images[rows].to(factors.device), self.value_range)


class Cars3DDataModule(GroundTruthDataModule):
    """Cars3D (Reed et al. 2015) as disentanglement_lib uses it: RGB 64x64 (from 128x128), factors
    elevation 4, azimuth 24, object 183.

    Args:
        root: directory of the 183 ``car_*_mesh.mat`` files.
        val_size: combinations held out for validation (and test), chosen by seed.
    """

    data_shape = (3, 64, 64)

    def __init__(self, root: str = "data/cars", val_size: PositiveInt = 1000, **kwargs) -> None:
        super().__init__(root, val_size, **kwargs)

    @cached_property
    def ground_truth(self) -> Cars3DGroundTruth:
        return Cars3DGroundTruth(self.root, self.value_range)
