"""The mutual information gap (metrics.mig): known answers on codes of a ground truth whose observations are the factors."""

import pytest

from metrics import mig
from tests.helpers import SMALL_METRIC_SIZES, factor_codes


def score(ground_truth, kind: str) -> float:
    return mig(ground_truth, factor_codes(ground_truth, kind), **SMALL_METRIC_SIZES["mig"])["mig"]


@pytest.fixture(scope="module")
def ideal(dsprites_like):
    return score(dsprites_like, "ideal")


def test_a_code_of_the_standardised_factors_scores_near_the_discretisation_cap(ideal):
    # 40 and 32 classes share 20 bins two by two: the gap is H(factor) - log 2 for those factors
    assert 0.85 < ideal < 0.93


def test_pure_noise_scores_near_zero(dsprites_like):
    assert score(dsprites_like, "noise") < 0.02


def test_copying_each_factor_twice_zeroes_the_gap(dsprites_like):
    assert score(dsprites_like, "copies") == 0.0


def test_a_rotation_of_the_factors_lowers_mig(dsprites_like, ideal):
    assert score(dsprites_like, "rotated") < ideal - 0.3
