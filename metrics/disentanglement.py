"""Disentanglement scores of a representation on ground-truth factors, as torchmetrics metrics.

Five scores, each a :class:`torchmetrics.Metric` and a function
``fn(ground_truth, represent, *, protocol="disentanglement_lib", seed=0, **sizes) -> dict[str, float]``:

- :func:`beta_vae_score` (Higgins et al. 2017, sec. 3): accuracy of a linear classifier that tells
  which factor a pair of observations shares from the mean |difference| of their codes;
- :func:`factor_vae_score` (Kim & Mnih 2018, sec. 4): accuracy of a majority vote that tells which
  factor a batch shares from the code dimension of least variance (scaled by its global std);
- :func:`mig` (Chen et al. 2018, eq. 4): mutual information gap of the discretised codes;
- :func:`sap` (Kumar et al. 2018, sec. 3): gap of the two most predictive code dimensions;
- :func:`dci` (Eastwood & Williams 2018): disentanglement, completeness and informativeness from
  the feature importances of gradient-boosted trees.

The algorithms follow google-research/disentanglement_lib (``evaluation/metrics``), whose defaults
are the ``disentanglement_lib`` protocol; the ``infogan_cr`` protocol changes the FactorVAE score to
the one of fjxmlzn/InfoGAN-CR (the numbers behind IDGAN-SC's table 3) and keeps the others.
Where the reference is ambiguous or fails, each metric's docstring says what we do. Shared rules:

- a factor with a single value carries no information: it is never the fixed factor of a pair or
  vote, and MIG, SAP and DCI average over the other factors (the reference divides by zero);
- a code of shape other than ``[n, D]`` for ``n`` observations, or with NaN/inf, is an error.

Each metric draws its factors once, from ``seed`` (a CPU ``torch.Generator``), at construction, as
groups of observations (a β-VAE point's pairs, a FactorVAE vote's batch, or one point).
``observe(represent, rank=r, world_size=w)`` encodes a contiguous ``1/w`` share of the groups and
keeps a summary of each (e.g. the mean |difference| of a β-VAE point's pairs, not its 128 codes);
summaries and group indices are list states reduced by concatenation, so under DDP ``compute()``
gathers every rank's share, restores the order and gives every rank the scores of one process
with that seed.
"""

from __future__ import annotations

import math
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Protocol

import numba
import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

PROTOCOLS = ("disentanglement_lib", "infogan_cr")

Represent = Callable[[Tensor], Tensor]


class GroundTruth(Protocol):
    """What the metrics need of a dataset with known factors (``datamodules.GridGroundTruth``:
    dSprites and its variants, 3D Shapes, MPI3D, SmallNORB, Cars3D).

    ``images_for`` is called without a generator: a dataset that draws more than the factors
    (colours, noise, SmallNORB's toy) must then give the same images for the same request, so
    every evaluation sees the same observations."""

    factor_sizes: list[int]

    def sample_factors(self, n: int, generator: torch.Generator) -> Tensor: ...

    def images_for(self, factors: Tensor) -> Tensor: ...


class DisentanglementMetric(Metric, ABC):
    """Shared machinery: the factors to observe, the codes as DDP-gathered states, the checks.

    Args:
        ground_truth: The dataset's factors and observations (see :class:`GroundTruth`).
        protocol: ``"disentanglement_lib"`` or ``"infogan_cr"`` (module docstring).
        seed: Seeds the factor sampling and the classifiers.
        sizes: Overrides of the protocol's sample counts and batch sizes (``defaults`` names them).
    """

    #: The sizes of the ``disentanglement_lib`` protocol; their names are the accepted ``sizes``.
    defaults: ClassVar[dict[str, Any]]
    #: Per-protocol changes to ``defaults``.
    protocol_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, ground_truth: GroundTruth, protocol: str = "disentanglement_lib", seed: int = 0, **sizes: Any) -> None:
        super().__init__()
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
        unknown = sorted(set(sizes) - set(self.defaults))
        if unknown:
            raise TypeError(f"{type(self).__name__} takes the sizes {sorted(self.defaults)}, not {unknown}")
        self.ground_truth, self.protocol, self.seed = ground_truth, protocol, seed
        self.sizes = {**self.defaults, **self.protocol_defaults.get(protocol, {}), **sizes}
        self.factor_sizes = [int(size) for size in ground_truth.factor_sizes]
        #: The factors with more than one value: the only ones a score can be about.
        self.varying = torch.tensor([j for j, size in enumerate(self.factor_sizes) if size > 1], dtype=torch.long)
        if len(self.varying) == 0:
            raise ValueError("every factor has a single value: there is nothing to disentangle")
        #: Factor classes [groups, group size, F] of every observation the score needs, in order.
        self.observations = self.plan(torch.Generator().manual_seed(seed))
        self.add_state("summaries", [], dist_reduce_fx="cat")
        self.add_state("groups", [], dist_reduce_fx="cat")

    @abstractmethod
    def plan(self, generator: torch.Generator) -> Tensor:
        """Draw the factor classes [groups, group size, F] of the observations to encode (and
        keep any labels)."""

    def summarise(self, codes: Tensor) -> Tensor:
        """What ``score`` needs of each group: codes [g, group size, D] (float64) -> [g, S]."""
        return codes.flatten(1)

    @abstractmethod
    def score(self, summaries: np.ndarray) -> dict[str, float]:
        """The scores from the summaries [groups, S] of every group, in order."""

    def observe(self, represent: Represent, *, batch_size: int = 4096, rank: int = 0, world_size: int = 1,
                device: torch.device | str | None = None) -> None:
        """Encode this process's share of the groups with ``represent``, about ``batch_size``
        observations at a time.

        The share is the ``rank``-th of ``world_size`` contiguous parts; observations are made on
        ``device`` (the model's) when given.
        """
        share = torch.arange(len(self.observations)).tensor_split(world_size)[rank]
        for chunk in share.split(max(1, batch_size // self.observations.shape[1])):
            factors = self.observations[chunk].flatten(0, 1)
            codes = represent(self.ground_truth.images_for(factors if device is None else factors.to(device)))
            self.update(codes, chunk)

    def update(self, codes: Tensor, groups: Tensor) -> None:
        """Codes [n, D] of the observations of the given groups (indices into ``observations``)."""
        group_size = self.observations.shape[1]
        if codes.ndim != 2 or codes.shape[0] != len(groups) * group_size:
            raise ValueError(
                f"a representation must map n observations to codes of shape [n, D]; "
                f"got shape {list(codes.shape)} for n={len(groups) * group_size}"
            )
        if not torch.isfinite(codes).all():
            raise ValueError("the representation returned NaN or infinite codes")
        summaries = self.summarise(codes.detach().double().view(len(groups), group_size, -1))
        if self.summaries and summaries.shape[1] != self.summaries[0].shape[1]:
            raise ValueError(f"the code dimension changed between batches (got codes of shape {list(codes.shape)})")
        self.summaries.append(summaries.to(self.device))
        self.groups.append(torch.as_tensor(groups, dtype=torch.long, device=self.device))

    def compute(self) -> dict[str, Tensor]:
        n = len(self.observations)
        if len(self.groups) == 0:
            raise RuntimeError(f"{type(self).__name__} has no codes: call observe(represent) before compute()")
        groups = dim_zero_cat(self.groups).cpu()
        order = groups.argsort()
        if not torch.equal(groups[order], torch.arange(n)):
            raise RuntimeError(
                f"{type(self).__name__} needs the codes of each of its {n} groups of observations exactly "
                f"once; it has {len(groups)} for {len(groups.unique())} of them"
            )
        summaries = dim_zero_cat(self.summaries).cpu()[order].numpy()
        return {key: torch.tensor(value, dtype=torch.float64) for key, value in self.score(summaries).items()}

    def _fixed_factors(self, n: int, generator: torch.Generator) -> Tensor:
        """For each of ``n`` groups, a varying factor drawn uniformly."""
        return self.varying[torch.randint(len(self.varying), (n,), generator=generator)]

    def _ys(self) -> np.ndarray:
        """The factor classes [N, F] of single-observation groups."""
        return self.observations[:, 0].numpy()


# ------------------------------------------------------------------------------------ β-VAE
class BetaVAEScore(DisentanglementMetric):
    """β-VAE score (Higgins et al. 2017, sec. 3; disentanglement_lib ``beta_vae.py``).

    Each point fixes one factor ``k`` in ``batch_size`` pairs of observations (the other factors
    drawn independently); its feature is the mean over the pairs of ``|z1 - z2|`` and its label
    ``k``. A logistic regression (scikit-learn's defaults, as the reference) is trained on
    ``num_train`` points; the score is its accuracy on ``num_eval`` other points.

    Keys: ``beta_vae``.
    """

    defaults = {"batch_size": 64, "num_train": 10000, "num_eval": 5000}

    def plan(self, generator):
        points, batch = self.sizes["num_train"] + self.sizes["num_eval"], self.sizes["batch_size"]
        self.fixed = self._fixed_factors(points, generator)
        first = self.ground_truth.sample_factors(points * batch, generator).view(points, batch, -1)
        second = self.ground_truth.sample_factors(points * batch, generator).view(points, batch, -1)
        rows = torch.arange(points)
        second[rows, :, self.fixed] = first[rows, :, self.fixed]
        return torch.cat([first, second], dim=1).cpu()

    def summarise(self, codes):
        first, second = codes.chunk(2, dim=1)
        return (first - second).abs().mean(dim=1)

    def score(self, features):
        classifier = LogisticRegression(random_state=self.seed)
        return {"beta_vae": _eval_accuracy(classifier, features, self.fixed.numpy(), self.sizes["num_train"])}


# -------------------------------------------------------------------------------- FactorVAE
class FactorVAEScore(DisentanglementMetric):
    """FactorVAE score (Kim & Mnih 2018, sec. 4; disentanglement_lib ``factor_vae.py``).

    The std of each code dimension is estimated on ``num_variance_estimate`` observations (rounded
    up to whole batches, drawn as groups so the DDP share is whole groups);
    dimensions with std below ``prune_threshold`` are left out. Each vote fixes one factor ``k`` in a
    batch of ``batch_size`` observations and votes (dimension of least variance / global variance,
    ``k``). Each dimension's class is its majority factor over ``num_train`` votes; the score is the
    accuracy of that classifier on ``num_eval`` other votes, or on the same votes when ``num_eval``
    is 0.

    Protocols: ``disentanglement_lib`` as above (fixed factor drawn at random, 10,000 / 5,000 votes
    of 64, std from 10,000 points, threshold 0.05); ``infogan_cr`` as fjxmlzn/InfoGAN-CR's
    ``FactorVAEMetric``: 500 votes of 100 cycling over the factors, std from a random 10% of the
    dataset (``num_variance_estimate=None``: drawn with replacement here), no pruning, scored on the
    training votes. What we do where the references differ or fail:

    - variances use ddof=1 (InfoGAN-CR uses 0): the argmin is the same either way;
    - a dimension with zero variance is never a candidate (the reference divides by zero; with
      InfoGAN-CR's no pruning the NaN would win the argmin); with no candidate the score is 0;
    - the vote table has one column per candidate dimension, so fewer dimensions than factors
      works (every factor without a dimension counts as misclassified).

    Keys: ``factor_vae``.
    """

    defaults = {"batch_size": 64, "num_train": 10000, "num_eval": 5000, "num_variance_estimate": 10000,
                "prune_threshold": 0.05}
    protocol_defaults = {"infogan_cr": {"batch_size": 100, "num_train": 500, "num_eval": 0,
                                        "num_variance_estimate": None, "prune_threshold": 0.0}}

    def plan(self, generator):
        votes, batch = self.sizes["num_train"] + self.sizes["num_eval"], self.sizes["batch_size"]
        if self.protocol == "infogan_cr":
            self.fixed = self.varying[torch.arange(votes) % len(self.varying)]
        else:
            self.fixed = self._fixed_factors(votes, generator)
        spread = self.sizes["num_variance_estimate"] or math.prod(self.factor_sizes) // 10
        self.spread_groups = math.ceil(spread / batch)
        groups = self.ground_truth.sample_factors((self.spread_groups + votes) * batch, generator).view(-1, batch, len(self.factor_sizes))
        rows = torch.arange(votes) + self.spread_groups
        groups[rows, :, self.fixed] = groups[rows, 0, self.fixed][:, None]
        return groups.cpu()

    def summarise(self, codes):
        return torch.cat([codes.mean(dim=1), codes.var(dim=1)], dim=1)

    def score(self, summaries):
        train, batch = self.sizes["num_train"], self.sizes["batch_size"]
        means, variances = np.split(summaries, 2, axis=1)
        global_variance = _pooled_variance(means[: self.spread_groups], variances[: self.spread_groups], batch)
        candidates = (global_variance > 0) & (np.sqrt(global_variance) >= self.sizes["prune_threshold"])
        if not candidates.any():
            return {"factor_vae": 0.0}
        local_variance = variances[self.spread_groups :]
        chosen = np.argmin(local_variance[:, candidates] / global_variance[candidates], axis=1)
        fixed = self.fixed.numpy()
        table = np.zeros((len(self.factor_sizes), int(candidates.sum())))
        np.add.at(table, (fixed[:train], chosen[:train]), 1)
        majority = table.argmax(axis=0)
        held_out = slice(train, None) if self.sizes["num_eval"] else slice(0, train)
        return {"factor_vae": float(np.mean(majority[chosen[held_out]] == fixed[held_out]))}


# -------------------------------------------------------------------------------------- MIG
class MutualInformationGap(DisentanglementMetric):
    """Mutual information gap (Chen et al. 2018, eq. 4; disentanglement_lib ``mig.py``).

    Each code dimension is discretised into ``num_bins`` equal-width bins over its range (the
    reference's ``np.histogram`` edges); for each factor ``k`` the gap between the two largest
    ``I(z_j; v_k)`` is divided by ``H(v_k)`` (natural logs, from counts) and averaged over factors.
    The discretisation caps the score below 1 even for a perfect code. With a single code
    dimension the second-largest information is taken as 0 (the reference fails).

    Keys: ``mig``.
    """

    defaults = {"num_train": 10000, "num_bins": 20}

    def plan(self, generator):
        return self.ground_truth.sample_factors(self.sizes["num_train"], generator)[:, None].cpu()

    def score(self, codes):
        bins = _discretise(codes, self.sizes["num_bins"])
        ys = self._ys()
        gaps = []
        for factor in self.varying.tolist():
            information = _mutual_information(bins, self.sizes["num_bins"], ys[:, factor], self.factor_sizes[factor])
            entropy = _entropy(ys[:, factor])
            if entropy > 0:
                gaps.append(_top_two_gap(information) / entropy)
        return {"mig": float(np.mean(gaps)) if gaps else 0.0}


# -------------------------------------------------------------------------------------- SAP
class SAPScore(DisentanglementMetric):
    """Separated attribute predictability (Kumar et al. 2018, sec. 3; disentanglement_lib ``sap_score.py``).

    For discrete factors (all ground truths here), entry (j, k) of the score matrix is the test
    accuracy of a linear SVM (``LinearSVC(C=0.01, class_weight="balanced")``, as the reference)
    predicting factor ``k`` from code dimension ``j`` alone, trained on ``num_train`` points and
    tested on ``num_test``; the score averages over factors the gap between the two best
    dimensions. With a single code dimension the second-best accuracy is taken as 0.

    Keys: ``sap``.
    """

    defaults = {"num_train": 10000, "num_test": 5000}

    def plan(self, generator):
        return self.ground_truth.sample_factors(self.sizes["num_train"] + self.sizes["num_test"], generator)[:, None].cpu()

    def score(self, codes):
        ys, train = self._ys(), self.sizes["num_train"]
        pairs = [(dim, factor) for dim in range(codes.shape[1]) for factor in self.varying.tolist()]
        accuracy = _parallel_map(
            lambda pair: _eval_accuracy(LinearSVC(C=0.01, class_weight="balanced"), codes[:, [pair[0]]], ys[:, pair[1]], train),
            pairs,
        )
        return {"sap": float(np.mean(_top_two_gap(np.reshape(accuracy, (codes.shape[1], len(self.varying))))))}


# -------------------------------------------------------------------------------------- DCI
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
    thresholds, a random one of exactly tied dimensions; ``_TreeGrower``, a compiled kernel), all
    of a round's trees in one call, a thread per factor, and break ties as scikit-learn does in expectation
    (``_boosted_tree_importance``): dimensions that make the same splits (copies, monotone
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
        fits = dict(zip(factors, _parallel_map(lambda factor: _boosted_tree_importance(codes, ys[:, factor], train, self.seed),
                                               factors, workers=len(factors))))
        fits = [fits[factor] for factor in self.varying.tolist()]
        importance = np.stack([fit[0] for fit in fits], axis=1)
        return {
            "dci_disentanglement": _dci_weighted_specificity(importance),
            "dci_completeness": _dci_weighted_specificity(importance.T),
            "dci_informativeness": float(np.mean([fit[1] for fit in fits])),
        }


# --------------------------------------------------------------------------------- helpers
def _parallel_map(fn: Callable[[Any], Any], items: list, workers: int | None = None) -> list:
    """``[fn(item) for item in items]`` on ``workers`` threads (default: one per core): the
    estimators fit single-threaded outside the GIL, so results do not depend on the thread count."""
    with ThreadPoolExecutor(max_workers=workers or max(1, min(len(items), os.cpu_count() or 1))) as pool:
        return list(pool.map(fn, items))


def _eval_accuracy(classifier, x: np.ndarray, y: np.ndarray, num_train: int) -> float:
    """Accuracy on ``x[num_train:]`` of ``classifier`` fitted on ``x[:num_train]`` (a training set
    with one class predicts that class)."""
    classes = np.unique(y[:num_train])
    if len(classes) == 1:
        predictions = np.full(len(y) - num_train, classes[0])
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # the reference's iteration caps
            predictions = classifier.fit(x[:num_train], y[:num_train]).predict(x[num_train:])
    return float(np.mean(predictions == y[num_train:]))


def _pooled_variance(means: np.ndarray, variances: np.ndarray, group_size: int) -> np.ndarray:
    """The variance (ddof=1) of all points of equal-sized groups, from each group's mean and variance."""
    within = (group_size - 1) * variances.sum(axis=0)
    between = group_size * np.square(means - means.mean(axis=0)).sum(axis=0)
    return (within + between) / (len(means) * group_size - 1)


def _top_two_gap(scores: np.ndarray) -> np.ndarray:
    """Per column, the largest entry minus the second largest (0 when there is one row)."""
    ordered = np.sort(scores, axis=0)
    return ordered[-1] - (ordered[-2] if len(ordered) > 1 else 0.0)


def _discretise(codes: np.ndarray, num_bins: int) -> np.ndarray:
    """Bin indices [N, D] in [0, num_bins) over equal-width bins spanning each column's range
    (``np.histogram``'s edges; a constant column falls into one bin)."""
    low, high = codes.min(axis=0), codes.max(axis=0)
    left_edges = low + np.arange(num_bins)[:, None] * ((high - low) / num_bins)
    return (codes[:, None, :] >= left_edges[None]).sum(axis=1) - 1


def _mutual_information(bins: np.ndarray, num_bins: int, factor: np.ndarray, factor_size: int) -> np.ndarray:
    """I(z_j; v) in nats for every column j of ``bins`` (from the joint counts), shape [D]."""
    n, dims = bins.shape
    cells = (np.arange(dims) * num_bins * factor_size + bins * factor_size + factor[:, None]).ravel()
    joint = np.bincount(cells, minlength=dims * num_bins * factor_size).reshape(dims, num_bins, factor_size) / n
    outer = joint.sum(axis=2, keepdims=True) * joint.sum(axis=1, keepdims=True)
    nonzero = joint > 0
    terms = np.zeros_like(joint)
    terms[nonzero] = joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])
    return terms.sum(axis=(1, 2))


def _entropy(labels: np.ndarray) -> float:
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _boosted_tree_importance(codes: np.ndarray, y: np.ndarray, num_train: int, seed: int, rounds: int = 100,
                             learning_rate: float = 0.1, depth: int = 3) -> tuple[np.ndarray, float]:
    """(importance of each code dimension, test accuracy) of scikit-learn's
    ``GradientBoostingClassifier`` with its defaults (Friedman 2001, alg. 6), which the reference
    fits: from the log class priors, each round fits per class a depth-3 least-squares tree to the
    residuals ``onehot(y) - softmax`` (one tree on ``y - sigmoid`` for two classes), sets each leaf
    to the Newton step ``(K-1)/K sum r / sum p(1-p)`` (``sum r / sum p(1-p)`` for two classes) and
    adds 0.1 times it; a dimension's importance is the squared-error reduction of its splits summed
    over all trees, normalised to sum 1 (``feature_importances_``). :class:`_TreeGrower` grows the
    trees as scikit-learn's ``DecisionTreeRegressor`` does, all of a round's in one call.

    Dimensions that make the same splits (equal or mirrored ranks: copies, monotone transforms)
    tie at every node, where scikit-learn picks one at random: one of each group is fitted and its
    importance split evenly among the group, scikit-learn's expectation without its noise.

    Without a dimension that varies on the training points, or with a single training class, no
    tree can split: every importance is 0 and the prediction is the most frequent training class
    (scikit-learn's prior; it refuses a single class)."""
    x, x_test = codes[:num_train].astype(np.float32), codes[num_train:].astype(np.float32)  # as scikit-learn
    classes, labels = np.unique(y[:num_train], return_inverse=True)
    groups = _interchangeable_columns(x)
    importance = np.zeros(codes.shape[1])
    if len(classes) == 1 or not groups:
        majority = classes[np.bincount(labels).argmax()]
        return importance, float(np.mean(y[num_train:] == majority))
    representatives = np.array([group[0] for group in groups])
    x, x_test = np.ascontiguousarray(x[:, representatives]), np.ascontiguousarray(x_test[:, representatives])
    k = len(classes)
    binary = k == 2
    # raw predictions, residuals and leaves are [trees, points]
    targets = np.eye(k)[labels].T[1:] if binary else np.eye(k)[labels].T
    prior = np.bincount(labels, minlength=k) / len(labels)
    initial = np.log(prior[1:] / prior[:1]) if binary else np.log(prior)
    raw, test_raw = np.repeat(initial[:, None], len(x), axis=1), np.repeat(initial[:, None], len(x_test), axis=1)
    grower = _TreeGrower(x, depth, np.random.default_rng(seed))
    tree_rows = np.arange(len(initial))[:, None] * grower.leaves
    newton_scale = 1.0 if binary else (k - 1) / k
    fitted = np.zeros(x.shape[1])
    for _ in range(rounds):
        p = _probabilities(raw)
        residuals = targets - p
        splits, leaf_of, reduction = grower.grow(residuals)
        fitted += reduction
        cells = (tree_rows + leaf_of).ravel()
        size = len(initial) * grower.leaves
        numerator = newton_scale * np.bincount(cells, residuals.ravel(), minlength=size)
        denominator = np.bincount(cells, (p * (1 - p)).ravel(), minlength=size)
        leaf_values = np.divide(numerator, denominator, out=np.zeros(size), where=np.abs(denominator) >= 1e-150)
        raw += learning_rate * leaf_values.take(tree_rows + leaf_of)
        test_raw += learning_rate * leaf_values.take(tree_rows + _TreeGrower.apply(splits, x_test))
    for group, value in zip(groups, fitted):
        importance[group] = value / len(group)
    predictions = classes[(test_raw[0] > 0).astype(int)] if binary else classes[test_raw.argmax(axis=0)]
    return (importance / importance.sum() if importance.sum() > 0 else importance), float(np.mean(predictions == y[num_train:]))


class _TreeGrower:
    """scikit-learn's least-squares regression trees (``DecisionTreeRegressor(max_depth=depth)``,
    ``_splitter.pyx``'s best splitter) on the training codes ``x`` [N, D] (float32), one per row of
    a round's residuals [trees, N].

    As scikit-learn: a node of one point or of zero variance (to rounding) is a leaf; its split is
    the one of largest squared-error reduction, at the midpoint of consecutive values more than
    1e-7 apart (float32 arithmetic); within a dimension the lowest best threshold wins, and among
    dimensions, which scikit-learn visits in a random order keeping the first strictly better, a
    uniformly random one of the exact ties (rounding decides near-ties, in both).

    Where scikit-learn sorts each node's points along each dimension, we sort each dimension once
    and grow each tree level by level (:func:`_grow_trees`), keeping each dimension's points
    grouped by node, each node's run in increasing order (split stably into the children's runs).
    A threshold with ``n_left`` of a node's ``n`` points on its left reduces the squared error by
    ``n u^2 / (n_left n_right)``, where ``u`` is the left sum of the residuals less the node's mean
    (scikit-learn's proxy ``L^2 / n_left + (S - L)^2 / n_right`` less the node's constant
    ``S^2 / n``), a running sum over the node's run, so that the same left set gives the same sum
    in every dimension and exact ties stay exact, as in scikit-learn (a left set of one or two
    points, common in small nodes).

    Why compiled (numba): a level is a few operations per point, dimension and tree, which numpy
    and torch could only do in several passes over [trees, D, N] arrays (gathering each node's
    points, prefix sums, residual gathers, node statistics, routing) plus per-node call overhead;
    fused into one kernel, the 40-class factor of ``bench/metrics.py``'s code fits 1.9x faster on
    one thread, and the whole DCI 2.9x (most likely as the kernel also runs without the GIL, which
    the factors' threads queued for; one process, alternating, README "Speed"). The first call
    compiles it (~2.6 s), later processes load it from numba's cache (~0.1 s)."""

    def __init__(self, x: np.ndarray, depth: int, generator: np.random.Generator) -> None:
        self.depth, self.generator, self.leaves = depth, generator, 2**depth
        self.presorted = np.ascontiguousarray(np.argsort(x, axis=0, kind="stable").T.astype(np.int32))  # [D, N]
        self.x_sorted = np.take_along_axis(x.T, self.presorted, axis=1)
        self.x_columns = np.ascontiguousarray(x.T)

    def grow(self, residuals: np.ndarray) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
        """Fit one tree to each row of ``residuals`` [trees, N]. Returns the splits of each level
        (dimension and threshold of each node, [trees, 2**level] each; a leaf sends every point
        left), each training point's leaf [trees, N] and each dimension's squared-error reduction
        summed over the trees' splits [D]."""
        trees, dims = len(residuals), len(self.presorted)
        # per level, a uniform number per tree, dimension and node ([trees, D, 2**level]) ranks exact ties
        ties = self.generator.random(trees * dims * (self.leaves - 1))
        dim, threshold, node, reduction = _grow_trees(self.presorted, self.x_sorted, self.x_columns,
                                                      np.ascontiguousarray(residuals, dtype=np.float64), self.depth, ties)
        splits = [(dim[level, :, :2**level], threshold[level, :, :2**level]) for level in range(self.depth)]
        return splits, node, reduction

    @staticmethod
    def _descend(node: np.ndarray, dim: np.ndarray, threshold: np.ndarray, x_columns: np.ndarray) -> np.ndarray:
        """The children [trees, M] of the points of ``x_columns`` [D, M] in nodes ``node`` [trees, M]
        of one level whose splits are ``dim`` and ``threshold`` [trees, nodes]: left when ``x <= threshold``."""
        at = np.arange(len(node))[:, None] * dim.shape[1] + node
        points = x_columns.shape[1]
        return 2 * node + (x_columns.take(dim.take(at) * points + np.arange(points)) > threshold.take(at))

    @staticmethod
    def apply(splits: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
        """The leaf [trees, M] of each point of ``x`` [M, D] in each tree."""
        node = np.zeros((len(splits[0][0]), len(x)), dtype=np.intp)
        x_columns = np.ascontiguousarray(x.T)
        for dim, threshold in splits:
            node = _TreeGrower._descend(node, dim, threshold, x_columns)
        return node


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _grow_trees(presorted, x_sorted, x_columns, residuals, depth, ties):
    """:class:`_TreeGrower`'s trees, one per row of ``residuals`` [trees, N], on the dimensions'
    orders ``presorted`` [D, N] (their values ``x_sorted``; the codes ``x_columns`` [D, N]).
    ``ties`` ranks exact ties among dimensions (level by level, [trees, D, 2**level] each).
    Returns each level's split dimension and threshold [depth, trees, 2**(depth-1)] (a leaf:
    dimension 0, threshold inf), each point's leaf [trees, N] and the reduction per dimension [D],
    summed level by level, as numpy's bincount of the splits.

    Each dimension's points (with their values and residuals) are kept grouped by node, each
    node's run in increasing order, and split stably into the children's runs after each level:
    a node's scan reads its run in sequence and keeps its running sum in a register."""
    trees, n = residuals.shape
    dims = presorted.shape[0]
    width = 2 ** (depth - 1)
    close = np.float32(1e-7)
    split_dim = np.zeros((depth, trees, width), np.intp)
    split_threshold = np.full((depth, trees, width), np.inf)
    node = np.zeros((trees, n), np.uint8)
    level_reduction = np.zeros((depth, dims))
    runs, children = np.empty((dims, n), np.int32), np.empty((dims, n), np.int32)
    run_x, child_x = np.empty((dims, n), np.float32), np.empty((dims, n), np.float32)
    run_residuals, child_residuals = np.empty((dims, n)), np.empty((dims, n))
    for tree in range(trees):
        for d in range(dims):
            for j in range(n):
                runs[d, j] = presorted[d, j]
                run_x[d, j] = x_sorted[d, j]
                run_residuals[d, j] = residuals[tree, presorted[d, j]]
        counts = np.zeros(1, np.intp)
        sums = np.zeros(1)
        sum_squares = np.zeros(1)
        for i in range(n):  # node statistics in point order, as numpy's bincount
            r = residuals[tree, i]
            counts[0] += 1
            sums[0] += r
            sum_squares[0] += r * r
        closed = np.zeros(1, np.bool_)
        for level in range(depth):
            nodes = 2**level
            growing = np.zeros(nodes, np.bool_)
            mean = np.zeros(nodes)
            starts = np.zeros(nodes, np.intp)
            for k in range(nodes):
                starts[k] = 0 if k == 0 else starts[k - 1] + counts[k - 1]
                if counts[k] >= 2 and not closed[k]:
                    mean[k] = sums[k] / counts[k]
                    growing[k] = sum_squares[k] / counts[k] - mean[k] * mean[k] > _EPSILON
            offset = trees * dims * (nodes - 1) + tree * dims * nodes
            next_closed = np.ones(2 * nodes, np.bool_)
            for k in range(nodes):
                if not growing[k]:
                    continue
                count = counts[k]
                # per dimension, the best reduction n u^2 / (n_left n_right) of the node's run at its lowest
                # threshold; among exactly tied dimensions, the one of the highest random rank
                top, chosen, rank, threshold = -np.inf, 0, -1.0, 0.0
                for d in range(dims):
                    best, below, above = -np.inf, np.float32(0), np.float32(0)
                    u, n_left, previous = 0.0, 0, np.float32(0)
                    for j in range(starts[k], starts[k] + count):
                        value = run_x[d, j]
                        if n_left > 0 and value > previous + close:  # float32, as scikit-learn
                            gain = u * u * (count / (n_left * (count - n_left)))
                            if gain > best:
                                best, below, above = gain, previous, value
                        u += run_residuals[d, j] - mean[k]
                        n_left += 1
                        previous = value
                    if best > top or (best == top and best > -np.inf and ties[offset + d * nodes + k] > rank):
                        top, chosen, rank = best, d, ties[offset + d * nodes + k]
                        threshold = np.float64(below) / 2.0 + np.float64(above) / 2.0
                if top == -np.inf:
                    continue
                next_closed[2 * k] = next_closed[2 * k + 1] = False
                level_reduction[level, chosen] += top
                split_dim[level, tree, k] = chosen
                split_threshold[level, tree, k] = threshold
            closed = next_closed
            counts = np.zeros(2 * nodes, np.intp)
            sums = np.zeros(2 * nodes)
            sum_squares = np.zeros(2 * nodes)
            for i in range(n):
                k = node[tree, i]
                child = 2 * k + (x_columns[split_dim[level, tree, k], i] > split_threshold[level, tree, k])
                node[tree, i] = child
                r = residuals[tree, i]
                counts[child] += 1
                sums[child] += r
                sum_squares[child] += r * r
            if level + 1 == depth:
                break
            for d in range(dims):  # each run split stably into its children's
                left = 0
                for k in range(nodes):
                    right = left + counts[2 * k]
                    for j in range(starts[k], starts[k] + counts[2 * k] + counts[2 * k + 1]):
                        i = runs[d, j]
                        is_right = node[tree, i] & 1
                        to = right if is_right else left
                        children[d, to] = i
                        child_x[d, to] = run_x[d, j]
                        child_residuals[d, to] = run_residuals[d, j]
                        right += is_right
                        left += 1 - is_right
                    left = right
            runs, children = children, runs
            run_x, child_x = child_x, run_x
            run_residuals, child_residuals = child_residuals, run_residuals
    reduction = np.zeros(dims)
    for level in range(depth):
        reduction += level_reduction[level]
    return split_dim, split_threshold, node, reduction


def _interchangeable_columns(x: np.ndarray) -> list[list[int]]:
    """The non-constant columns of ``x`` grouped by the partitions their thresholds make: two
    columns are in one group when their ranks (ties shared) are equal or mirrored."""
    groups: dict[bytes, list[int]] = {}
    for j, column in enumerate(x.T):
        ranks = np.unique(column, return_inverse=True)[1].ravel()
        top = ranks.max()
        if top == 0:
            continue
        mirrored = top - ranks
        differ = np.flatnonzero(ranks != mirrored)
        canonical = ranks if len(differ) == 0 or ranks[differ[0]] < mirrored[differ[0]] else mirrored
        groups.setdefault(canonical.astype(np.int64).tobytes(), []).append(j)
    return list(groups.values())


_EPSILON = np.finfo(np.float64).eps  # scikit-learn's tolerance for a zero impurity


def _probabilities(raw: np.ndarray) -> np.ndarray:
    """Sigmoid of one row of log-odds, or softmax over rows of classes (raw predictions [trees, N])."""
    if len(raw) == 1:
        return 1.0 / (1.0 + np.exp(-raw))
    e = np.exp(raw - raw.max(axis=0))
    return e / e.sum(axis=0)


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


# ------------------------------------------------------------------------------ functional
def _functional(name: str, metric_class: type[DisentanglementMetric]) -> Callable[..., dict[str, float]]:
    def evaluate(ground_truth: GroundTruth, represent: Represent, *, protocol: str = "disentanglement_lib",
                 seed: int = 0, **sizes: Any) -> dict[str, float]:
        metric = metric_class(ground_truth, protocol=protocol, seed=seed, **sizes)
        metric.sync_on_compute = False  # one process observed everything
        with torch.no_grad():
            metric.observe(represent)
        return {key: float(value) for key, value in metric.compute().items()}

    evaluate.__name__ = evaluate.__qualname__ = name
    evaluate.__doc__ = (
        f"{metric_class.__name__} of ``represent`` (observations -> codes [n, D]) on ``ground_truth``, "
        f"in one call; ``sizes`` override the protocol's ({', '.join(metric_class.defaults)}).\n\n"
        f"{metric_class.__doc__}"
    )
    return evaluate


beta_vae_score = _functional("beta_vae_score", BetaVAEScore)
factor_vae_score = _functional("factor_vae_score", FactorVAEScore)
mig = _functional("mig", MutualInformationGap)
sap = _functional("sap", SAPScore)
dci = _functional("dci", DCIScore)

#: Metric classes by the short name the callback and the logged keys use.
METRICS: dict[str, type[DisentanglementMetric]] = {
    "beta_vae": BetaVAEScore, "factor_vae": FactorVAEScore, "mig": MutualInformationGap, "sap": SAPScore, "dci": DCIScore,
}
