"""The supervised-contrastive regulariser's head E and its health checks, shared by every model that
trains one (``IDGANSC``, ``InfoGANSC``; seed 001 eq. 6).

E's r is centred over the m pairs before its L2 normalisation (batch norm without affine
parameters; the paper does not specify E). Eq. 6 with τ1 < τ2 rewards raising every similarity at
once: per anchor the positives pull with weight 1/τ1 and the denominator pushes back with only
1/τ2, so an E free to give every pair the same direction collapses to it (mean cosine 1, the loss
stuck at log(m-1) - (1/τ1 - 1/τ2)) within ~100 steps, even on pairs drawn visibly differently, and
G is pushed to make its pairs alike. Centring removes that shared direction and leaves eq. 6's
discriminative part (measured with a fixed renderer as G, 3 seeds: accuracy .35-.39 centred vs
.23-.29 uncentred, mean cosine .10-.15 vs .99).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch import Tensor, nn


class ContrastiveHead(nn.Sequential):
    """E: ``network`` (pairs [m, 2C, H, W] -> [m, d]) followed by centring over the m pairs; returns
    the L2-normalised representations r [m, d] that eq. 6 compares. Needs m >= 2 in training."""

    def __init__(self, network: nn.Module, representation_dim: int) -> None:
        super().__init__(network, nn.BatchNorm1d(representation_dim, affine=False))

    def forward(self, pairs: Tensor) -> Tensor:
        """r [m, d], each row of unit L2 norm, for channel-concatenated pairs [m, 2C, H, W]."""
        return F.normalize(super().forward(pairs), dim=1)


def nearest_neighbour_accuracy(representations: Tensor, labels: Tensor) -> Tensor:
    """Share of samples whose most similar other sample has the same label (chance ≈ 1/#labels)."""
    similarity = representations @ representations.T
    similarity.fill_diagonal_(float("-inf"))
    return (labels[similarity.argmax(1)] == labels).float().mean()


def label_cosines(representations: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Mean cosine similarity of each normalised representation with the others of its label, and
    with those of other labels (0 where there are none). E tells the labels apart when the first is
    clearly above the second; both near 1 is a collapsed E."""
    similarity = representations @ representations.T
    same = labels[:, None] == labels[None, :]
    same.fill_diagonal_(False)
    other = labels[:, None] != labels[None, :]
    return (similarity * same).sum() / same.sum().clamp(min=1), (similarity * other).sum() / other.sum().clamp(min=1)


class SeparationWatch:
    """Warns once when, over a whole window of generator steps after the first three windows, E's
    representations of pairs that vary the same code dimension are no more alike than those of
    pairs that vary different ones: eq. 6 then does nothing, and the cause is G (measured: the
    speckle of a G the discriminator has left behind). One host synchronisation per window.

    Args:
        model_name: Named in the warning.
        window: Generator steps per check.
        margin: How much more alike same-dimension pairs must be than the others.
    """

    def __init__(self, model_name: str, window: int = 100, margin: float = 0.05) -> None:
        self.model_name, self.window, self.margin = model_name, window, margin
        self._sums = torch.zeros(2)
        self._warned = False

    def metrics(self, representations: Tensor, labels: Tensor, step: int) -> dict[str, Tensor]:
        """E's separation of this step's pairs, to log (``sc_accuracy``, ``sc_cosine_same``,
        ``sc_cosine_other``); checks the window that ends at generator step ``step``."""
        representations = representations.detach()
        same, other = label_cosines(representations, labels)
        self._observe(same, other, step)
        return {
            "train/sc_accuracy": nearest_neighbour_accuracy(representations, labels),
            "train/sc_cosine_same": same,
            "train/sc_cosine_other": other,
        }

    def _observe(self, same_cosine: Tensor, other_cosine: Tensor, step: int) -> None:
        self._sums = self._sums.to(same_cosine.device) + torch.stack([same_cosine, other_cosine])
        if step % self.window:
            return
        same, other = (self._sums / self.window).tolist()
        self._sums = torch.zeros_like(self._sums)
        if step >= 3 * self.window and same - other < self.margin and not self._warned:
            self._warned = True
            rank_zero_warn(
                f"{self.model_name}: the contrastive head E tells G's pairs apart no better than chance over generator steps "
                f"{step - self.window}-{step} (mean cosine {same:.2f} for pairs that vary the same code dimension, "
                f"{other:.2f} otherwise): G does not draw its code visibly, so L_SC does nothing. With d_loss near 0 "
                f"the discriminator has left G behind: e.g. discriminator_normalization: spectral and a generator "
                f"learning rate above the discriminator's, as configs/quickstart.yaml does."
            )
