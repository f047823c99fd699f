"""Sample quality on Gaussian-mixture toy data (the mode-collapse measures of VEEGAN / Unrolled GAN).

A sample is *high quality* when it lies within ``threshold`` standard deviations of its nearest
centre; a mode is *covered* when at least one high-quality sample is nearest to it.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mixture_coverage(samples: Tensor, centers: Tensor, std: float, threshold: float = 3.0) -> dict[str, float]:
    """``{"modes_covered", "high_quality_fraction"}`` of ``samples`` [N, D] for a mixture with
    ``centers`` [K, D] and per-component standard deviation ``std``."""
    distances = torch.cdist(samples.double(), centers.double())
    nearest_distance, nearest = distances.min(dim=1)
    good = nearest_distance <= threshold * std
    return {
        "modes_covered": float(nearest[good].unique().numel()),
        "high_quality_fraction": good.double().mean().item(),
    }


def moment_distance(samples: Tensor, data: Tensor) -> dict[str, float]:
    """Distances between the first two moments: ``|mean_s - mean_d|`` and ``‖cov_s - cov_d‖_F``."""
    samples, data = samples.double(), data.double()
    return {
        "mean_distance": torch.linalg.vector_norm(samples.mean(0) - data.mean(0)).item(),
        "covariance_distance": torch.linalg.matrix_norm(torch.cov(samples.T) - torch.cov(data.T)).item(),
    }
