"""The SAP score (metrics.sap): known answers on codes of a ground truth whose observations are the factors."""

from metrics import sap
from tests.helpers import SMALL_METRIC_SIZES, factor_codes


def score(ground_truth, kind: str) -> float:
    return sap(ground_truth, factor_codes(ground_truth, kind), **SMALL_METRIC_SIZES["sap"])["sap"]


def test_a_code_of_the_standardised_factors_scores_a_gap(dsprites_like):
    assert score(dsprites_like, "ideal") > 0.15


def test_pure_noise_scores_near_zero(dsprites_like):
    assert score(dsprites_like, "noise") < 0.02


def test_copying_each_factor_twice_zeroes_the_gap(dsprites_like):
    assert score(dsprites_like, "copies") == 0.0
