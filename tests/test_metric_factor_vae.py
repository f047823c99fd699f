"""The FactorVAE score (metrics.factor_vae): known answers, and the two protocols' sizes and votes."""

import math

import pytest

from metrics import FactorVAEScore, factor_vae_score
from tests.helpers import DSPRITES_SIZES, SMALL_METRIC_SIZES, factor_codes

SMALL = SMALL_METRIC_SIZES["factor_vae"]


def score(ground_truth, kind: str) -> float:
    return factor_vae_score(ground_truth, factor_codes(ground_truth, kind), **SMALL)["factor_vae"]


def test_a_code_of_the_standardised_factors_scores_perfectly(dsprites_like):
    assert score(dsprites_like, "ideal") == 1.0


def test_pure_noise_scores_chance(dsprites_like):
    assert abs(score(dsprites_like, "noise") - 1 / len(DSPRITES_SIZES)) < 0.1


def test_the_protocol_selects_sizes_and_the_infogan_cr_votes_cycle_over_factors(dsprites_like):
    standard = FactorVAEScore(dsprites_like)
    assert (standard.sizes["batch_size"], standard.sizes["num_train"], standard.sizes["num_eval"]) == (64, 10000, 5000)
    infogan_cr = FactorVAEScore(dsprites_like, protocol="infogan_cr", num_variance_estimate=1000)
    assert (infogan_cr.sizes["batch_size"], infogan_cr.sizes["num_train"], infogan_cr.sizes["num_eval"]) == (100, 500, 0)
    assert infogan_cr.fixed[:7].tolist() == [0, 1, 2, 3, 4, 0, 1]
    assert math.ceil(math.prod(DSPRITES_SIZES) // 10 / 100) == FactorVAEScore(dsprites_like, protocol="infogan_cr").spread_groups
    represent = factor_codes(dsprites_like, "ideal")
    assert factor_vae_score(dsprites_like, represent, protocol="infogan_cr", num_train=100, num_variance_estimate=1000) == {"factor_vae": 1.0}
    with pytest.raises(TypeError, match="num_test"):
        factor_vae_score(dsprites_like, represent, num_test=10)


def test_fewer_code_dimensions_than_factors_classifies_the_factors_it_has(dsprites_like):
    def first_two_factors(x):
        return dsprites_like.standardise(x)[:, :2]

    score = factor_vae_score(dsprites_like, first_two_factors, **SMALL)["factor_vae"]
    # votes for factors 0 and 1 are right; the other three factors' votes cannot be
    assert 0.3 < score < 0.5
