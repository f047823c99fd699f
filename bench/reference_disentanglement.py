"""A straightforward re-implementation of google-research/disentanglement_lib's metrics
(``evaluation/metrics/{beta_vae,factor_vae,mig,sap_score,dci}.py``), the yardstick for
``metrics`` (``metrics.METRICS``): the same per-point sampling loops, scikit-learn estimators and
score formulas as the reference, with its defaults. Not part of the package.

It takes the same ``ground_truth`` (``factor_sizes``, ``sample_factors(n, torch.Generator)``,
``images_for``) and ``represent`` as the package; like the reference it fails on single-valued
factors and on codes with fewer than two dimensions.
"""

from __future__ import annotations

import numpy as np
import scipy.stats
import torch
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC


class _Sampler:
    """The reference's ``random_state``: factor draws and observations, one small batch at a time."""

    def __init__(self, ground_truth, represent, seed: int) -> None:
        self.ground_truth, self.represent = ground_truth, represent
        self.generator = torch.Generator().manual_seed(seed)
        self.random_state = np.random.RandomState(seed)
        self.num_factors = len(ground_truth.factor_sizes)

    def factors(self, n: int) -> np.ndarray:
        return self.ground_truth.sample_factors(n, self.generator).numpy()

    def codes(self, factors: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.represent(self.ground_truth.images_for(torch.from_numpy(factors))).double().numpy()

    def factor_code_batch(self, num_points: int, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """``generate_batch_factor_code``: codes [D, N] and factors [F, N]."""
        codes, factors = [], []
        for start in range(0, num_points, batch_size):
            batch = self.factors(min(batch_size, num_points - start))
            factors.append(batch)
            codes.append(self.codes(batch))
        return np.concatenate(codes).T, np.concatenate(factors).T


def beta_vae(ground_truth, represent, seed=0, batch_size=64, num_train=10000, num_eval=5000) -> float:
    sampler = _Sampler(ground_truth, represent, seed)

    def points(n):
        labels, features = np.zeros(n, dtype=np.int64), []
        for i in range(n):
            index = sampler.random_state.randint(sampler.num_factors)
            first, second = sampler.factors(batch_size), sampler.factors(batch_size)
            second[:, index] = first[:, index]
            features.append(np.mean(np.abs(sampler.codes(first) - sampler.codes(second)), axis=0))
            labels[i] = index
        return np.stack(features), labels

    train_x, train_y = points(num_train)
    model = LogisticRegression(random_state=sampler.random_state).fit(train_x, train_y)
    eval_x, eval_y = points(num_eval)
    return float(np.mean(model.predict(eval_x) == eval_y))


def factor_vae(ground_truth, represent, seed=0, batch_size=64, num_train=10000, num_eval=5000,
               num_variance_estimate=10000, prune_threshold=0.05) -> float:
    sampler = _Sampler(ground_truth, represent, seed)
    global_variances = np.var(sampler.codes(sampler.factors(num_variance_estimate)), axis=0, ddof=1)
    active_dims = np.sqrt(global_variances) >= prune_threshold
    if not active_dims.any():
        return 0.0

    def votes(n):
        table = np.zeros((sampler.num_factors, global_variances.shape[0]), dtype=np.int64)
        for _ in range(n):
            index = sampler.random_state.randint(sampler.num_factors)
            factors = sampler.factors(batch_size)
            factors[:, index] = factors[0, index]
            local_variances = np.var(sampler.codes(factors), axis=0, ddof=1)
            argmin = np.argmin(local_variances[active_dims] / global_variances[active_dims])
            table[index, argmin] += 1
        return table

    train_votes = votes(num_train)
    classifier = np.argmax(train_votes, axis=0)
    other_index = np.arange(train_votes.shape[1])
    eval_votes = votes(num_eval)
    return float(np.sum(eval_votes[classifier, other_index]) / np.sum(eval_votes))


def mig(ground_truth, represent, seed=0, num_train=10000, num_bins=20) -> float:
    sampler = _Sampler(ground_truth, represent, seed)
    mus, ys = sampler.factor_code_batch(num_train)
    discretized = np.zeros_like(mus, dtype=np.int64)
    for i in range(mus.shape[0]):
        discretized[i] = np.digitize(mus[i], np.histogram(mus[i], num_bins)[1][:-1])
    m = np.array([[mutual_info_score(ys[j], discretized[i]) for j in range(ys.shape[0])] for i in range(mus.shape[0])])
    entropy = np.array([mutual_info_score(ys[j], ys[j]) for j in range(ys.shape[0])])
    sorted_m = np.sort(m, axis=0)[::-1]
    return float(np.mean((sorted_m[0] - sorted_m[1]) / entropy))


def sap(ground_truth, represent, seed=0, num_train=10000, num_test=5000) -> float:
    sampler = _Sampler(ground_truth, represent, seed)
    mus, ys = sampler.factor_code_batch(num_train)
    mus_test, ys_test = sampler.factor_code_batch(num_test)
    matrix = np.zeros((mus.shape[0], ys.shape[0]))
    for i in range(mus.shape[0]):
        for j in range(ys.shape[0]):
            classifier = LinearSVC(C=0.01, class_weight="balanced").fit(mus[i][:, None], ys[j])
            matrix[i, j] = np.mean(classifier.predict(mus_test[i][:, None]) == ys_test[j])
    ordered = np.sort(matrix, axis=0)
    return float(np.mean(ordered[-1] - ordered[-2]))


def dci(ground_truth, represent, seed=0, num_train=10000, num_test=5000, random_state=None) -> dict[str, float]:
    sampler = _Sampler(ground_truth, represent, seed)
    mus, ys = sampler.factor_code_batch(num_train)
    mus_test, ys_test = sampler.factor_code_batch(num_test)
    return dci_scores(mus.T, ys.T, mus_test.T, ys_test.T, random_state)


def dci_scores(codes, factors, codes_test, factors_test, random_state=None) -> dict[str, float]:
    """The reference's ``compute_dci`` on codes [N, D] and factor classes [N, F];
    ``random_state`` seeds ``GradientBoostingClassifier``'s tie-breaks (the reference leaves it unset)."""
    importance = np.zeros((codes.shape[1], factors.shape[1]))
    test_accuracy = []
    for j in range(factors.shape[1]):
        model = GradientBoostingClassifier(random_state=random_state).fit(codes, factors[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        test_accuracy.append(np.mean(model.predict(codes_test) == factors_test[:, j]))

    def weighted(matrix):  # disentanglement for [codes, factors], completeness for the transpose
        per_row = 1.0 - scipy.stats.entropy(matrix.T + 1e-11, base=matrix.shape[1])
        if matrix.sum() == 0.0:
            matrix = np.ones_like(matrix)
        return float(np.sum(per_row * matrix.sum(axis=1) / matrix.sum()))

    return {"dci_disentanglement": weighted(importance), "dci_completeness": weighted(importance.T),
            "dci_informativeness": float(np.mean(test_accuracy))}
