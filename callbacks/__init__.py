"""Lightning callbacks: image grids, disentanglement, sample-quality and mixture-coverage evaluation, on a shared step cadence; the run's checkpoints (every N steps, end of fit, preemption); the progress bar."""

from callbacks.checkpoint import RunCheckpoint
from callbacks.disentanglement import DisentanglementEvaluation
from callbacks.fid import FIDEvaluation
from callbacks.mixture import MixtureEvaluation
from callbacks.images import ImageGridCallback, LatentTraversal, PredictionGrid, Reconstructions, SampleGrid
from callbacks.periodic import EvaluationCallback, PeriodicCallback
from callbacks.progress import StepRunProgressBar

__all__ = [
    "DisentanglementEvaluation",
    "EvaluationCallback",
    "FIDEvaluation",
    "ImageGridCallback",
    "LatentTraversal",
    "MixtureEvaluation",
    "PeriodicCallback",
    "PredictionGrid",
    "Reconstructions",
    "RunCheckpoint",
    "SampleGrid",
    "StepRunProgressBar",
]
