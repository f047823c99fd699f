"""Lightning callbacks: image grids and sample-quality evaluation (FID/KID)."""

from callbacks.fid import FIDEvaluation
from callbacks.images import ImageGridCallback, LatentTraversal, Reconstructions, SampleGrid
from callbacks.periodic import PeriodicCallback

__all__ = ["FIDEvaluation", "ImageGridCallback", "LatentTraversal", "PeriodicCallback", "Reconstructions", "SampleGrid"]
