"""What the five disentanglement metrics share (metrics.disentanglement): seeding, DDP shares,
errors, degenerate codes and factors, and the one list of their names. Each metric's known answers
are in tests/test_metric_<name>.py."""

import math
import typing

import pytest
import torch

from callbacks import DisentanglementEvaluation
from datamodules.synthetic import FactorGroundTruth
from metrics import METRICS, PROTOCOLS, MutualInformationGap, mig, sap
from tests.helpers import SMALL_METRIC_SIZES as SMALL
from tests.helpers import factor_codes


def test_the_callback_takes_exactly_the_registered_metrics_and_protocols():
    hints = typing.get_type_hints(DisentanglementEvaluation.__init__)
    assert typing.get_args(typing.get_args(hints["metrics"])[0]) == tuple(METRICS)
    assert typing.get_args(hints["protocol"]) == PROTOCOLS == ("disentanglement_lib", "infogan_cr")


def test_an_unknown_protocol_is_a_clear_error(dsprites_like):
    with pytest.raises(ValueError, match="unknown protocol"):
        mig(dsprites_like, factor_codes(dsprites_like, "ideal"), protocol="mine")


def test_the_same_seed_gives_the_same_scores_and_another_seed_other_samples(dsprites_like):
    represent = factor_codes(dsprites_like, "rotated")
    first = sap(dsprites_like, represent, **SMALL["sap"])
    assert sap(dsprites_like, represent, **SMALL["sap"]) == first
    assert not torch.equal(MutualInformationGap(dsprites_like, seed=1).observations, MutualInformationGap(dsprites_like).observations)


@pytest.mark.parametrize("name", list(METRICS))
def test_shares_observed_in_any_order_give_the_one_process_scores(name):
    """What DDP does: each rank encodes a disjoint share; the gathered states are put back in order."""
    ground_truth = FactorGroundTruth((3, 4, 5))
    represent = factor_codes(ground_truth, "rotated")  # deterministic: any order gives the same codes
    whole = METRICS[name].evaluate(ground_truth, represent, **SMALL[name])
    metric = METRICS[name](ground_truth, **SMALL[name])
    for rank in (2, 0, 1):
        metric.observe(represent, rank=rank, world_size=3, batch_size=500)
    assert {key: float(value) for key, value in metric.compute().items()} == whole


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_compute_needs_every_observation_once(dsprites_like):
    metric = MutualInformationGap(dsprites_like, num_train=100)
    with pytest.raises(RuntimeError, match="observe"):
        metric.compute()
    metric.observe(factor_codes(dsprites_like, "ideal"), rank=0, world_size=2)
    with pytest.raises(RuntimeError, match="exactly once"):
        metric.compute()


@pytest.mark.parametrize("name", list(METRICS))
def test_degenerate_codes_and_factors_give_finite_scores(name):
    ground_truth = FactorGroundTruth((4, 1, 5))  # the middle factor has a single value
    represent = factor_codes(ground_truth, "ideal", noise_dims=0)

    def with_constant_dims(x):
        return torch.cat([represent(x), torch.zeros(len(x), 2)], dim=1)

    def fewer_dims_than_factors(x):
        return ground_truth.standardise(x)[:, :1]

    for code in (with_constant_dims, fewer_dims_than_factors):
        result = METRICS[name].evaluate(ground_truth, code, **SMALL[name])
        assert all(math.isfinite(value) and 0.0 <= value <= 1.0 for value in result.values()), (code.__name__, result)
    # the constant dimensions and the single-valued factor change nothing for a perfect code
    perfect = METRICS[name].evaluate(ground_truth, with_constant_dims, **SMALL[name])
    if name in ("beta_vae", "factor_vae"):
        assert perfect[name] == 1.0


@pytest.mark.parametrize("name", list(METRICS))
def test_a_representation_of_the_wrong_shape_is_a_clear_error(dsprites_like, name):
    def flat(x):
        return x.sum(dim=1)

    with pytest.raises(ValueError, match=r"codes of shape \[n, D\]"):
        METRICS[name].evaluate(dsprites_like, flat, **SMALL[name])
