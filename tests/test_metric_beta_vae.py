"""The β-VAE score (metrics.beta_vae): known answers on codes of a ground truth whose observations are the factors."""

from metrics import beta_vae_score
from tests.helpers import DSPRITES_SIZES, SMALL_METRIC_SIZES, factor_codes


def score(ground_truth, kind: str) -> float:
    return beta_vae_score(ground_truth, factor_codes(ground_truth, kind), **SMALL_METRIC_SIZES["beta_vae"])["beta_vae"]


def test_a_code_of_the_standardised_factors_scores_perfectly(dsprites_like):
    assert score(dsprites_like, "ideal") == 1.0


def test_pure_noise_scores_chance(dsprites_like):
    assert abs(score(dsprites_like, "noise") - 1 / len(DSPRITES_SIZES)) < 0.1
