"""DCI (metrics.dci, metrics.gradient_boosting): known answers, agreement with the reference
(disentanglement_lib's scikit-learn estimator) on the same samples, degenerate codes, tie-breaking."""

import math

import numpy as np
import pytest
import torch

from bench.reference_disentanglement import dci_scores as reference_dci_scores
from datamodules.synthetic import FactorGroundTruth
from metrics import DCIScore, dci
from metrics.gradient_boosting import TreeGrower
from tests.helpers import SMALL_METRIC_SIZES, factor_codes


def scores(ground_truth, kind: str) -> dict[str, float]:
    return dci(ground_truth, factor_codes(ground_truth, kind), **SMALL_METRIC_SIZES["dci"])


@pytest.fixture(scope="module")
def ideal(dsprites_like):
    return scores(dsprites_like, "ideal")


def test_a_code_of_the_standardised_factors_scores_perfectly(ideal):
    assert ideal["dci_disentanglement"] > 0.95
    assert ideal["dci_completeness"] > 0.95
    assert ideal["dci_informativeness"] > 0.95


def test_pure_noise_scores_near_zero_or_chance(dsprites_like):
    noise = scores(dsprites_like, "noise")
    assert noise["dci_disentanglement"] < 0.05
    assert noise["dci_informativeness"] < 0.3


def test_copying_each_factor_twice_keeps_disentanglement_and_splits_completeness(dsprites_like):
    copies = scores(dsprites_like, "copies")
    assert copies["dci_disentanglement"] > 0.9
    # each factor's importance is split between its two copies, as scikit-learn's random tie-break does
    assert copies["dci_completeness"] == pytest.approx(1 - math.log(2) / math.log(10), abs=0.02)


def test_a_rotation_of_the_factors_lowers_disentanglement(dsprites_like, ideal):
    rotated = scores(dsprites_like, "rotated")
    assert rotated["dci_disentanglement"] < ideal["dci_disentanglement"] - 0.3


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

    x = np.array([[0, 1.5, 2.5], [1, 2.5, 0.5], [2, 3.5, 1.5], [3, 0.5, 3.5],
                  [10, 1.0, 1.0], [13, 2.0, 2.0], [11, 3.0, 3.0], [12, 4.0, 4.0]], dtype=np.float32)
    residuals = np.array([-1.25, -1.16, -1.07, -1.11, 1.3, 1.2, 0.7, 0.8])
    theirs, ours = set(), set()
    for seed in range(12):
        tree = DecisionTreeRegressor(max_depth=2, random_state=seed).fit(x, residuals).tree_
        right = tree.children_right[0]
        theirs.add((int(tree.feature[0]), float(tree.threshold[0]), int(tree.feature[right]), float(tree.threshold[right])))
        (root_dim, root_threshold), (dim, threshold) = TreeGrower(x, 2, np.random.default_rng(seed)).grow(residuals[None])[0]
        ours.add((int(root_dim[0, 0]), float(root_threshold[0, 0]), int(dim[0, 1]), float(threshold[0, 1])))
    assert theirs == {(0, 6.5, 1, 2.5), (0, 6.5, 2, 2.5)}
    assert ours == theirs
