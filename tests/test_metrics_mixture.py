"""Mode coverage and moment distances on cases with known answers."""

import pytest
import torch

from datamodules.gaussian_mixture import mixture_centers
from metrics import mixture_coverage, moment_distance

CENTERS = mixture_centers("ring", 8, 2.0)


def test_samples_of_the_mixture_cover_every_mode_and_are_all_high_quality():
    components = torch.arange(800) % 8
    samples = CENTERS[components] + 0.02 * torch.randn(800, 2, generator=torch.Generator().manual_seed(0))
    scores = mixture_coverage(samples, CENTERS, std=0.02)
    assert scores["modes_covered"] == 8
    assert scores["high_quality_fraction"] > 0.97  # 3σ in 2-D holds 98.9%


def test_a_collapsed_generator_covers_one_mode_and_points_between_modes_none():
    collapsed = CENTERS[3].expand(100, 2)
    between = (CENTERS[0] + CENTERS[1]).expand(50, 2) / 2
    scores = mixture_coverage(torch.cat([collapsed, between]), CENTERS, std=0.02)
    assert scores == {"modes_covered": 1.0, "high_quality_fraction": pytest.approx(100 / 150)}


def test_moment_distance_of_a_shifted_and_scaled_copy():
    data = torch.randn(5000, 2, generator=torch.Generator().manual_seed(1))
    data -= data.mean(0)  # so that scaling leaves the mean where it is
    shifted = 2 * data + torch.tensor([3.0, 4.0])
    distances = moment_distance(shifted, data)
    covariance = torch.cov(data.double().T)
    assert distances["mean_distance"] == pytest.approx(5.0, rel=1e-9)
    assert distances["covariance_distance"] == pytest.approx(torch.linalg.matrix_norm(3 * covariance).item(), rel=1e-6)  # float32 data
    assert moment_distance(data, data) == {"mean_distance": 0.0, "covariance_distance": 0.0}
