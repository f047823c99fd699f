"""LightningDataModules; every batch is a tuple (x, y) with x in the module's `value_range`."""

from .base import BaseDataModule
from .celeba import CelebADataModule
from .dsprites import DSpritesDataModule, DSpritesGroundTruth
from .gaussian_mixture import GaussianMixtureDataModule
from .labels import LabelsDataModule
from .lsun import LSUNBedroomsDataModule
from .mnist import MNISTDataModule

__all__ = [
    "BaseDataModule",
    "CelebADataModule",
    "DSpritesDataModule",
    "DSpritesGroundTruth",
    "GaussianMixtureDataModule",
    "LabelsDataModule",
    "LSUNBedroomsDataModule",
    "MNISTDataModule",
]
