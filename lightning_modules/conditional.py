"""What every label-conditional model shares: how labels become the vector y the networks take,
and sampling that asks for labels.

Labels come as the datamodules give them: digit classes [B] (MNIST; one-hot encoded here) or
attribute vectors [B, num_labels] (CelebA's 40 attributes as 0/1, used as they are). With
"none" the model is unconditional: the batch's labels are ignored and y is empty.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

#: "classes": y is a class index per sample; "attributes": y is a vector per sample; "none": no y.
LabelKind = Literal["classes", "attributes", "none"]


def label_vector(labels: Tensor, kind: LabelKind, num_labels: int) -> Tensor:
    """The float vectors [B, num_labels] (or [B, 0] for "none") the conditional networks take.

    Raises:
        ValueError: class labels not of shape [B], or attribute labels not of shape [B, num_labels].
    """
    if kind == "none":
        return torch.zeros(len(labels), 0)
    if kind == "classes":
        if labels.dim() != 1:
            raise ValueError(f"class labels must have shape [B], got {list(labels.shape)}: set label_kind='attributes'")
        return F.one_hot(labels.long(), num_labels).float()
    if labels.dim() != 2 or labels.shape[1] != num_labels:
        raise ValueError(f"attribute labels must have shape [B, {num_labels}] (num_labels), got {list(labels.shape)}")
    return labels.float()


class ConditionalSampling:
    """Sampling API of a conditional model (a ``GenerativeModule`` that sets ``label_kind`` and
    ``num_labels`` and implements ``generate(latent, labels)``).

    ``sample(n, labels=...)`` generates for the given labels; without labels it cycles through
    the classes (0, 1, ..., K-1, 0, ...) or draws attribute vectors with each attribute on with
    probability ½. ``generate(latent)`` without labels (a latent traversal) holds one label fixed:
    class 0, or the zero attribute vector. ``predict_step`` generates for the labels of a batch.
    """

    label_kind: LabelKind
    num_labels: int

    @property
    def label_dim(self) -> int:
        """Width of y, the vector the networks take besides their main input."""
        return 0 if self.label_kind == "none" else self.num_labels

    def label_vector(self, labels: Tensor) -> Tensor:
        """y [B, label_dim] of ``labels`` (see :func:`label_vector`) on this module's device."""
        return label_vector(labels, self.label_kind, self.num_labels).to(self.device)

    def default_labels(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Labels for a grid of ``n`` samples when none are given."""
        if self.label_kind == "none":
            return torch.zeros(n, dtype=torch.long)
        if self.label_kind == "classes":
            return torch.arange(n) % self.num_labels
        device = generator.device if generator is not None else torch.device("cpu")
        return torch.rand(n, self.num_labels, generator=generator, device=device).lt(0.5).long()

    def fixed_labels(self, n: int) -> Tensor:
        """One label for ``n`` latents: class 0, or no attribute."""
        if self.label_kind in ("classes", "none"):
            return torch.zeros(n, dtype=torch.long)
        return torch.zeros(n, self.num_labels, dtype=torch.long)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: Tensor | None = None) -> Tensor:
        """``n`` samples for ``labels`` ([n] classes or [n, num_labels] attributes), in ``output_range``.

        Raises:
            ValueError: ``labels`` given for another number of samples than ``n``.
        """
        if labels is None:
            labels = self.default_labels(n, generator)
        if len(labels) != n:
            raise ValueError(f"sample({n}) needs {n} labels, got {len(labels)}")
        with self.evaluating():
            return self.generate(self.sample_latent(n, generator).to(self.device), labels)

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> dict[str, Tensor]:
        """``samples`` for the ``labels`` of ``batch``: its last element, so both ``(labels,)``
        batches of ``datamodules.LabelsDataModule`` and ``(x, y)`` batches of a dataset work; for
        the latter also what the model's encoder gives (``GenerativeModule.predict_step``)."""
        labels = batch[-1]
        predictions = {"samples": self.sample(len(labels), self._predict_generator(batch_idx), labels=labels), "labels": labels}
        if len(batch) > 1:
            predictions.update(self.encoder_predictions(batch))
        return predictions
