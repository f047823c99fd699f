"""Lightning callbacks: image grids, disentanglement and sample-quality evaluation, on a shared step cadence; a checkpoint on preemption."""

from callbacks.disentanglement import DisentanglementEvaluation
from callbacks.fid import FIDEvaluation
from callbacks.images import ImageGridCallback, LatentTraversal, PredictionGrid, Reconstructions, SampleGrid
from callbacks.periodic import PeriodicCallback
from callbacks.preemption import PreemptionCheckpoint

__all__ = [
    "DisentanglementEvaluation",
    "FIDEvaluation",
    "ImageGridCallback",
    "LatentTraversal",
    "PeriodicCallback",
    "PredictionGrid",
    "PreemptionCheckpoint",
    "Reconstructions",
    "SampleGrid",
]
