"""KL annealing: the weight of a VAE's KL term as a function of the training step.

Bowman et al. 2016 warm the KL weight up linearly from 0, so that the decoder learns to use z
before the KL term pulls q(z|x) onto the prior (seed 000's CVAE: "linearly increasing from zero
during the first half of training"); Fu et al. 2019 repeat that warm-up in cycles. A piecewise-linear
schedule can also lift β above its final value for a while: an early stretch of strong KL pressure
lets the diagonal posterior pick out axis-aligned factors (x and y apart), and a low stretch after it
lets dims closed by that pressure open again for the costlier factors (the quick start's shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, PositiveInt


@dataclass(frozen=True)
class KLAnnealing:
    """The factor that multiplies the KL term's target weight (β) at a training step.

    Args:
        schedule: "constant": always 1. "linear": step / warmup_steps, then 1. "cyclical" (Fu et
            al. 2019): the linear warm-up restarted every ``cycle_steps`` steps, 1 for the rest of
            each cycle (Fu et al.: 4 cycles, warm-up over half of each). "piecewise": linear
            between the (step, factor) ``points``, their first and last factor before and after
            them; factors may exceed 1.
        warmup_steps: Steps the factor takes to rise from 0 to 1 (in each cycle).
        cycle_steps: Length of a cycle ("cyclical" only).
        points: (step, factor) pairs with increasing steps ("piecewise" only).
    """

    schedule: Literal["constant", "linear", "cyclical", "piecewise"] = "constant"
    warmup_steps: NonNegativeInt = 0
    cycle_steps: PositiveInt | None = None
    points: Sequence[tuple[NonNegativeInt, NonNegativeFloat]] | None = None

    def __post_init__(self) -> None:
        # jsonargparse passes int subclasses; checkpoints must hold plain ints.
        object.__setattr__(self, "warmup_steps", int(self.warmup_steps))
        if self.cycle_steps is not None:
            object.__setattr__(self, "cycle_steps", int(self.cycle_steps))
        if self.points is not None:
            object.__setattr__(self, "points", tuple((int(step), float(factor)) for step, factor in self.points))
        if self.schedule == "cyclical" and (self.cycle_steps is None or not 0 < self.warmup_steps <= self.cycle_steps):
            raise ValueError(
                f"a cyclical KL schedule needs 0 < warmup_steps <= cycle_steps, got warmup_steps="
                f"{self.warmup_steps}, cycle_steps={self.cycle_steps}"
            )
        if (self.schedule == "piecewise") != (self.points is not None):
            raise ValueError(
                f"points go with schedule 'piecewise' and only with it, got schedule={self.schedule!r}, points={self.points}: "
                "give both or neither"
            )
        if self.points is not None and not (
            self.points and all(a[0] < b[0] for a, b in zip(self.points, self.points[1:])) and all(f >= 0 for _, f in self.points)
        ):
            raise ValueError(
                f"a piecewise KL schedule needs (step, factor) points with increasing steps and factors >= 0, got {list(self.points)}"
            )

    def factor(self, step: int) -> float:
        """The multiplier of β at ``step`` (the number of VAE updates made so far)."""
        if self.schedule == "piecewise":
            steps, factors = zip(*self.points)
            return float(np.interp(step, steps, factors))
        if self.schedule == "constant" or self.warmup_steps == 0:
            return 1.0
        if self.schedule == "cyclical":
            step %= self.cycle_steps
        return min(1.0, step / self.warmup_steps)


# Checkpoints store hyper-parameters; let torch.load(weights_only=True) accept this class, also by
# the path that checkpoints written before lightning_modules/training/ existed name it by.
torch.serialization.add_safe_globals([KLAnnealing, (KLAnnealing, "lightning_modules.annealing.KLAnnealing")])
