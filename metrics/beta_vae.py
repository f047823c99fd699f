"""The β-VAE score (Higgins et al. 2017, sec. 3), as disentanglement_lib's ``beta_vae.py``."""

from __future__ import annotations

import torch
from sklearn.linear_model import LogisticRegression

from metrics.disentanglement import DisentanglementMetric, eval_accuracy, functional


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
        return {"beta_vae": eval_accuracy(classifier, features, self.fixed.numpy(), self.sizes["num_train"])}


beta_vae_score = functional("beta_vae_score", BetaVAEScore)
