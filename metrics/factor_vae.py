"""The FactorVAE score (Kim & Mnih 2018, sec. 4), as disentanglement_lib's ``factor_vae.py`` or fjxmlzn/InfoGAN-CR's."""

from __future__ import annotations

import math

import numpy as np
import torch

from metrics.disentanglement import DisentanglementMetric, functional


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


factor_vae_score = functional("factor_vae_score", FactorVAEScore)


def _pooled_variance(means: np.ndarray, variances: np.ndarray, group_size: int) -> np.ndarray:
    """The variance [D] (ddof=1) of all points of equal-sized groups, from each group's mean and variance."""
    within = (group_size - 1) * variances.sum(axis=0)
    between = group_size * np.square(means - means.mean(axis=0)).sum(axis=0)
    return (within + between) / (len(means) * group_size - 1)

