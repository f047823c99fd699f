"""Lightning callbacks: image grids and disentanglement evaluation, on a shared step cadence."""

from callbacks.cadence import EveryNSteps
from callbacks.disentanglement import DisentanglementEvaluation
from callbacks.images import ImageGridCallback, LatentTraversal, Reconstructions, SampleGrid

__all__ = ["DisentanglementEvaluation", "EveryNSteps", "ImageGridCallback", "LatentTraversal", "Reconstructions", "SampleGrid"]
