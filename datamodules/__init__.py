"""LightningDataModules; every batch is a tuple (x, y) with x in the module's `value_range`."""

from .base import BaseDataModule
from .cars3d import Cars3DDataModule, Cars3DGroundTruth
from .celeba import CelebADataModule
from .dsprites import (
    ColorDSpritesDataModule,
    ColorDSpritesGroundTruth,
    DSpritesDataModule,
    DSpritesGroundTruth,
    NoisyDSpritesDataModule,
    NoisyDSpritesGroundTruth,
    ScreamDSpritesDataModule,
    ScreamDSpritesGroundTruth,
)
from .gaussian_mixture import GaussianMixtureDataModule
from .ground_truth import GridGroundTruth, GroundTruthDataModule
from .labels import LabelsDataModule
from .lsun import LSUNBedroomsDataModule
from .mnist import MNISTDataModule
from .mpi3d import MPI3DDataModule, MPI3DGroundTruth
from .shapes3d import Shapes3DDataModule, Shapes3DGroundTruth
from .smallnorb import SmallNORBDataModule, SmallNORBGroundTruth

__all__ = [
    "BaseDataModule",
    "Cars3DDataModule",
    "Cars3DGroundTruth",
    "CelebADataModule",
    "ColorDSpritesDataModule",
    "ColorDSpritesGroundTruth",
    "DSpritesDataModule",
    "DSpritesGroundTruth",
    "GaussianMixtureDataModule",
    "GridGroundTruth",
    "GroundTruthDataModule",
    "LabelsDataModule",
    "LSUNBedroomsDataModule",
    "MNISTDataModule",
    "MPI3DDataModule",
    "MPI3DGroundTruth",
    "NoisyDSpritesDataModule",
    "NoisyDSpritesGroundTruth",
    "ScreamDSpritesDataModule",
    "ScreamDSpritesGroundTruth",
    "Shapes3DDataModule",
    "Shapes3DGroundTruth",
    "SmallNORBDataModule",
    "SmallNORBGroundTruth",
]
