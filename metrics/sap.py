"""The separated attribute predictability score (Kumar et al. 2018, sec. 3), as disentanglement_lib's ``sap_score.py``."""

from __future__ import annotations

import numpy as np
from sklearn.svm import LinearSVC

from metrics.disentanglement import DisentanglementMetric, eval_accuracy, functional, parallel_map, top_two_gap


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
        accuracy = parallel_map(
            lambda pair: eval_accuracy(LinearSVC(C=0.01, class_weight="balanced"), codes[:, [pair[0]]], ys[:, pair[1]], train),
            pairs,
        )
        return {"sap": float(np.mean(top_two_gap(np.reshape(accuracy, (codes.shape[1], len(self.varying))))))}


sap = functional("sap", SAPScore)
