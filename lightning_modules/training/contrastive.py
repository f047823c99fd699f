"""The supervised-contrastive regulariser (seed 001 eq. 6): its settings, its head E and E's health
checks, shared by every model that trains one (``IDGANSC``, ``InfoGANSC``).

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

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from jsonargparse.typing import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    restricted_number_type,
)
from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch import Tensor, nn

from lightning_modules.losses import supervised_contrastive_loss
from lightning_modules.training.optim import OptimizerConfig

PairCount = restricted_number_type("PairCount", int, (">=", 2))


@dataclass(frozen=True)
class SupervisedContrastive:
    """The regulariser's settings, one group of a model's config (``contrastive: {weight: 2.0,
    num_pairs: 384, ...}``), validated when the config is parsed.

    Args:
        weight: α, L_SC's weight in G's loss (paper: 2).
        start_step: Generator steps trained without L_SC; until then E is neither used nor trained
            (0: from the first step, as the paper's Algorithm 1).
        num_pairs: m, the pairs built per generator step (paper: 384 on dSprites, 768 on CelebA);
            at least 2, as E centres r over them.
        tau_positive: τ1 of eq. 6, the positives' temperature (paper: 0.07).
        tau_all: τ2 of eq. 6, the denominator's temperature (paper: 0.1).
        representation_dim: d, the size of E's L2-normalised representation r (paper: 128).
        reduction: How eq. 6 reduces over the m anchors: "mean" (SupCon's reference code) or "sum"
            (eq. 6 as printed: α times m). "mean" reproduces the paper's setting: summed, α = 2
            weighs L_SC 2m = 768 times a per-anchor loss of ≈ 6 at the start (log(m - 1) with r at
            random) and ≈ 1.7 at collapse, thousands against G's adversarial loss of ≈ 0.7, so G
            would follow E alone and not draw the paper's sprites; α = 2 is InfoGAN-CR's weight on
            its batch-mean cross-entropy, the scale the paper carries over, and SupCon's own eq. 2,
            which eq. 6 copies, prints the sum that its code averages.
        optimizer: E's optimizer (paper: as D's).

    Raises:
        ValueError: ``num_pairs`` below 2 or a temperature that is not positive (when built outside
            the CLI, which refuses them while parsing).
    """

    weight: NonNegativeFloat = 2.0
    start_step: NonNegativeInt = 0
    num_pairs: PairCount = 384
    tau_positive: PositiveFloat = 0.07
    tau_all: PositiveFloat = 0.1
    representation_dim: PositiveInt = 128
    reduction: Literal["mean", "sum"] = "mean"
    optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.5, 0.999))

    def __post_init__(self) -> None:
        # jsonargparse passes int/float subclasses (PairCount, ...); checkpoints must hold plain values.
        for name in ("weight", "tau_positive", "tau_all"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("start_step", "num_pairs", "representation_dim"):
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.num_pairs < 2:
            raise ValueError(f"contrastive num_pairs must be at least 2 (E centres r over the pairs), got {self.num_pairs}")
        if self.tau_positive <= 0 or self.tau_all <= 0:
            raise ValueError(f"contrastive temperatures must be positive, got tau_positive={self.tau_positive}, tau_all={self.tau_all}")

    def weight_at(self, step: int) -> float:
        """α at generator step ``step``: 0 before ``start_step``, then ``weight``."""
        return self.weight if step >= self.start_step else 0.0

    def loss(self, representations: Tensor, labels: Tensor) -> Tensor:
        """L_SC (eq. 6, a scalar) of representations r [m, d] labelled by the code dimension [m] their pair varies."""
        return supervised_contrastive_loss(representations, labels, self.tau_positive, self.tau_all, self.reduction)


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


# Checkpoints store hyper-parameters; let torch.load(weights_only=True) accept the settings.
torch.serialization.add_safe_globals([SupervisedContrastive])
