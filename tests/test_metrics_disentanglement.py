"""Disentanglement metrics: known answers on codes of a ground truth whose observations are the factors."""

import math

import numpy as np
import pytest
import torch

from bench.reference_disentanglement import dci_scores as reference_dci_scores
from datamodules.synthetic import FactorGroundTruth
from metrics import METRICS, DCIScore, FactorVAEScore, MutualInformationGap, beta_vae_score, dci, factor_vae_score, mig, sap
from tests.helpers import factor_codes, metric_sizes

DSPRITES_SIZES = (3, 6, 40, 32, 32)
SMALL = metric_sizes(2000, batch=16)  # far below the protocols' sizes, enough for the known answers
FUNCTIONS = {"beta_vae": beta_vae_score, "factor_vae": factor_vae_score, "mig": mig, "sap": sap, "dci": dci}


def scores(ground_truth, represent, **kwargs):
    result = {}
    for name, fn in FUNCTIONS.items():
        result.update(fn(ground_truth, represent, **SMALL[name], **kwargs))
    return result


@pytest.fixture(scope="module")
def dsprites_like():
    return FactorGroundTruth(DSPRITES_SIZES)


@pytest.fixture(scope="module")
def ideal(dsprites_like):
    return scores(dsprites_like, factor_codes(dsprites_like, "ideal"))


def test_a_code_of_the_standardised_factors_scores_perfectly(ideal):
    assert ideal["beta_vae"] == 1.0
    assert ideal["factor_vae"] == 1.0
    assert ideal["dci_disentanglement"] > 0.95
    assert ideal["dci_completeness"] > 0.95
    assert ideal["dci_informativeness"] > 0.95
    # 40 and 32 classes share 20 bins two by two: the gap is H(factor) - log 2 for those factors
    assert 0.85 < ideal["mig"] < 0.93
    assert ideal["sap"] > 0.15


def test_pure_noise_scores_near_zero_or_chance(dsprites_like):
    noise = scores(dsprites_like, factor_codes(dsprites_like, "noise"))
    assert noise["mig"] < 0.02
    assert noise["sap"] < 0.02
    assert noise["dci_disentanglement"] < 0.05
    assert noise["dci_informativeness"] < 0.3
    chance = 1 / len(DSPRITES_SIZES)
    assert abs(noise["beta_vae"] - chance) < 0.1
    assert abs(noise["factor_vae"] - chance) < 0.1


def test_copying_each_factor_twice_keeps_disentanglement_but_zeroes_the_gaps(dsprites_like):
    copies = scores(dsprites_like, factor_codes(dsprites_like, "copies"))
    assert copies["mig"] == 0.0
    assert copies["sap"] == 0.0
    assert copies["dci_disentanglement"] > 0.9
    # each factor's importance is split between its two copies, as scikit-learn's random tie-break does
    assert copies["dci_completeness"] == pytest.approx(1 - math.log(2) / math.log(10), abs=0.02)


def test_a_rotation_of_the_factors_lowers_mig_and_dci(dsprites_like, ideal):
    rotated = scores(dsprites_like, factor_codes(dsprites_like, "rotated"))
    assert rotated["mig"] < ideal["mig"] - 0.3
    assert rotated["dci_disentanglement"] < ideal["dci_disentanglement"] - 0.3


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
    with pytest.raises(ValueError, match="unknown protocol"):
        mig(dsprites_like, represent, protocol="mine")


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
    whole = FUNCTIONS[name](ground_truth, represent, **SMALL[name])
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
        result = FUNCTIONS[name](ground_truth, code, **SMALL[name])
        assert all(math.isfinite(value) and 0.0 <= value <= 1.0 for value in result.values()), (code.__name__, result)
    # the constant dimensions and the single-valued factor change nothing for a perfect code
    perfect = FUNCTIONS[name](ground_truth, with_constant_dims, **SMALL[name])
    if name in ("beta_vae", "factor_vae"):
        assert perfect[name] == 1.0


def test_fewer_code_dimensions_than_factors_classifies_the_factors_it_has(dsprites_like):
    def first_two_factors(x):
        return dsprites_like.standardise(x)[:, :2]

    score = factor_vae_score(dsprites_like, first_two_factors, **SMALL["factor_vae"])["factor_vae"]
    # votes for factors 0 and 1 are right; the other three factors' votes cannot be
    assert 0.3 < score < 0.5


@pytest.mark.parametrize("name", list(METRICS))
def test_a_representation_of_the_wrong_shape_is_a_clear_error(dsprites_like, name):
    def flat(x):
        return x.sum(dim=1)

    with pytest.raises(ValueError, match=r"codes of shape \[n, D\]"):
        FUNCTIONS[name](dsprites_like, flat, **SMALL[name])


@pytest.mark.parametrize("kind", ["ideal", "rotated", "partial", "copies"])
def test_dci_agrees_with_the_reference_on_the_same_samples(kind):
    """disentanglement_lib's GradientBoostingClassifier, averaged over the random_states that break
    its ties, on the very codes and factors ours scores."""
    ground_truth = FactorGroundTruth((3, 4, 6))
    metric = DCIScore(ground_truth, num_train=300, num_test=150)
    codes = factor_codes(ground_truth, kind, noise_dims=2)(metric.observations[:, 0].float()).double().numpy()
    ys, train = metric._ys(), 300
    ours = metric.score(codes)
    references = [reference_dci_scores(codes[:train], ys[:train], codes[train:], ys[train:], seed) for seed in range(2)]
    for key, value in ours.items():
        assert value == pytest.approx(np.mean([r[key] for r in references]), abs=0.02), key


@pytest.mark.parametrize("num_train", [2, 10, 40])
def test_dci_scores_any_code_of_the_right_shape(num_train):
    """Tiny training sets, constant, duplicated and mirrored dimensions, one dimension, fewer
    dimensions than factors, random widths: a score in [0, 1], never an error."""
    ground_truth = FactorGroundTruth((3, 4, 5))
    generator = torch.Generator().manual_seed(num_train)
    codes = {
        "constant dims": lambda f: torch.cat([ground_truth.standardise(f), torch.ones(len(f), 2)], dim=1),
        "duplicated and mirrored": lambda f: torch.cat([ground_truth.standardise(f)[:, :2]] * 2 + [-ground_truth.standardise(f)], dim=1),
        "one dim": lambda f: ground_truth.standardise(f)[:, 1:2],
        "fewer dims than factors": lambda f: ground_truth.standardise(f)[:, :2],
        **{f"random width {d}": (lambda d: lambda f: torch.randn(len(f), d, generator=generator))(d)
           for d in torch.randint(1, 12, (3,), generator=generator).tolist()},
    }
    for name, represent in codes.items():
        result = dci(ground_truth, represent, num_train=num_train, num_test=20)
        assert all(0.0 <= value <= 1.0 for value in result.values()), (name, result)


def test_a_collapsed_code_scores_zero_disentanglement_and_completeness():
    """Posterior collapse: every dimension constant. No dimension predicts anything, so every
    importance is 0 (D = C = 0, as the reference) and the trees predict the most frequent class."""
    ground_truth = FactorGroundTruth((3, 4, 5))
    metric = DCIScore(ground_truth, num_train=200, num_test=100)
    ys = metric._ys()
    result = dci(ground_truth, lambda f: torch.full((len(f), 4), 0.5), num_train=200, num_test=100)
    majority = [np.bincount(ys[:200, j]).argmax() for j in range(3)]
    assert result == {"dci_disentanglement": 0.0, "dci_completeness": 0.0,
                      "dci_informativeness": pytest.approx(np.mean([np.mean(ys[200:, j] == majority[j]) for j in range(3)]))}


def test_dci_trees_break_a_tie_in_a_later_node_at_random_as_scikit_learn():
    """Dimensions 1 and 2 agree on the points of the root's right child (and differ on the left
    child's): there they make the same split, which scikit-learn's DecisionTreeRegressor picks
    from its random feature order. Ours must tie them exactly too (the left child's sums must not
    leak into the right child's) and pick one with the seed: both appear over a few seeds."""
    from sklearn.tree import DecisionTreeRegressor

    from metrics.disentanglement import _TreeGrower

    x = np.array([[0, 1.5, 2.5], [1, 2.5, 0.5], [2, 3.5, 1.5], [3, 0.5, 3.5],
                  [10, 1.0, 1.0], [13, 2.0, 2.0], [11, 3.0, 3.0], [12, 4.0, 4.0]], dtype=np.float32)
    residuals = np.array([-1.25, -1.16, -1.07, -1.11, 1.3, 1.2, 0.7, 0.8])
    theirs, ours = set(), set()
    for seed in range(12):
        tree = DecisionTreeRegressor(max_depth=2, random_state=seed).fit(x, residuals).tree_
        right = tree.children_right[0]
        theirs.add((int(tree.feature[0]), float(tree.threshold[0]), int(tree.feature[right]), float(tree.threshold[right])))
        (root_dim, root_threshold), (dim, threshold) = _TreeGrower(x, 2, np.random.default_rng(seed)).grow(residuals[None])[0]
        ours.add((int(root_dim[0, 0]), float(root_threshold[0, 0]), int(dim[0, 1]), float(threshold[0, 1])))
    assert theirs == {(0, 6.5, 1, 2.5), (0, 6.5, 2, 2.5)}
    assert ours == theirs
