"""Lightning callbacks: image grids, disentanglement and sample-quality evaluation, on a shared step cadence; the run's checkpoints (every N steps, end of fit, preemption)."""

from callbacks.checkpoint import RunCheckpoint
from callbacks.disentanglement import DisentanglementEvaluation
from callbacks.fid import FIDEvaluation
from callbacks.images import ImageGridCallback, LatentTraversal, PredictionGrid, Reconstructions, SampleGrid
from callbacks.periodic import PeriodicCallback

__all__ = [
    "DisentanglementEvaluation",
    "FIDEvaluation",
    "ImageGridCallback",
    "LatentTraversal",
    "PeriodicCallback",
    "PredictionGrid",
    "Reconstructions",
    "RunCheckpoint",
    "SampleGrid",
]
