"""The mutual information gap (Chen et al. 2018, eq. 4), as disentanglement_lib's ``mig.py``."""

from __future__ import annotations

import numpy as np

from metrics.disentanglement import DisentanglementMetric, functional, top_two_gap


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
                gaps.append(top_two_gap(information) / entropy)
        return {"mig": float(np.mean(gaps)) if gaps else 0.0}


mig = functional("mig", MutualInformationGap)


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
    """H(v) in nats of integer labels [N], from their counts."""
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())

