"""Disentanglement, completeness and informativeness (Eastwood & Williams 2018), as disentanglement_lib's ``dci.py``."""

from __future__ import annotations

import numpy as np

from metrics.disentanglement import DisentanglementMetric, functional, parallel_map
from metrics.gradient_boosting import boosted_tree_importance


class DCIScore(DisentanglementMetric):
    """Disentanglement, completeness, informativeness (Eastwood & Williams 2018; disentanglement_lib ``dci.py``).

    For each factor a gradient-boosted tree classifier predicts it from the whole code (trained on
    ``num_train`` points); ``R[j, k]`` is dimension ``j``'s importance for factor ``k``.
    Disentanglement is ``sum_j rho_j (1 - H_K(R[j, :]))`` with ``rho_j`` dimension ``j``'s share of
    the total importance, completeness ``sum_k rho_k (1 - H_D(R[:, k]))`` (entropies in base K
    factors and D dimensions, eqs. 2-3 of the paper), informativeness the mean test accuracy over
    factors (on ``num_test`` points), as the reference reports it.

    The estimator: the reference fits scikit-learn's ``GradientBoostingClassifier`` (100 depth-3
    trees per class, learning rate 0.1) and reads its impurity-decrease importances; that takes
    minutes on a 10-dim code of dSprites. We run the same boosting algorithm (least-squares trees on
    the softmax residuals, Newton-step leaves, squared-error-reduction importances normalised per
    factor) in numpy, growing the trees as scikit-learn's ``DecisionTreeRegressor`` does (exact
    thresholds, a random one of exactly tied dimensions; ``metrics.gradient_boosting.TreeGrower``, a compiled kernel), all
    of a round's trees in one call, a thread per factor, and break ties as scikit-learn does in expectation
    (``boosted_tree_importance``): dimensions that make the same splits (copies, monotone
    transforms) share a factor's importance evenly, so a code that copies each factor twice has
    completeness 1 - log 2 / log D, as the reference's mean over its random_states. On
    ``bench/metrics.py``'s known-answer codes every score is within 0.02 of that mean on the same
    samples.

    Degenerate codes get scores, never errors: any ``num_train``, constant dimensions (they get
    importance 0), a fully collapsed code (every dimension constant, as after posterior collapse):
    no importance anywhere, so disentanglement and completeness are 0 (what the reference's
    formulas give: every entropy is maximal) and informativeness is the accuracy of predicting
    each factor's most frequent training class. With one factor, disentanglement is 1; with one
    dimension, completeness is 1 (the reference's entropy base would be 1), unless all importances
    are 0.

    Keys: ``dci_disentanglement``, ``dci_completeness``, ``dci_informativeness``.
    """

    defaults = {"num_train": 10000, "num_test": 5000}

    def plan(self, generator):
        return self.ground_truth.sample_factors(self.sizes["num_train"] + self.sizes["num_test"], generator)[:, None].cpu()

    def score(self, codes):
        ys, train = self._ys(), self.sizes["num_train"]
        # a thread per factor: on few cores the cores stay busy until the last fit ends (a thread per
        # core leaves one idle while the other fits the last large factor), on many the largest
        # factor bounds the time; the factors with the most classes (the longest fits) start first
        factors = sorted(self.varying.tolist(), key=lambda factor: -self.factor_sizes[factor])
        fits = dict(zip(factors, parallel_map(lambda factor: boosted_tree_importance(codes, ys[:, factor], train, self.seed),
                                               factors, workers=len(factors))))
        fits = [fits[factor] for factor in self.varying.tolist()]
        importance = np.stack([fit[0] for fit in fits], axis=1)
        return {
            "dci_disentanglement": _dci_weighted_specificity(importance),
            "dci_completeness": _dci_weighted_specificity(importance.T),
            "dci_informativeness": float(np.mean([fit[1] for fit in fits])),
        }


dci = functional("dci", DCIScore)


def _dci_weighted_specificity(importance: np.ndarray) -> float:
    """sum_i rho_i (1 - H(R[i, :])) with the entropy in base R.shape[1] and rho_i row i's share of
    the importance, as disentanglement_lib's ``dci.py`` (disentanglement for R [D, K], completeness
    for R.T). All importances 0 (no dimension predicts anything) gives 0, the reference's value:
    every row is then uniform. One column gives 1 (the reference's entropy base would be 1)."""
    total = importance.sum()
    if total == 0:
        return 0.0
    if importance.shape[1] == 1:
        return 1.0
    p = importance + 1e-11
    p = p / p.sum(axis=1, keepdims=True)
    specificity = 1.0 + (p * np.log(p)).sum(axis=1) / np.log(importance.shape[1])
    return float(np.sum(specificity * importance.sum(axis=1) / total))

