"""Per-network optimizer settings, validated when the config is parsed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, PositiveFloat, PositiveInt
from torch.optim.lr_scheduler import LRScheduler


@dataclass(frozen=True)
class OptimizerConfig:
    """One network's optimizer.

    Args:
        lr: Learning rate.
        betas: Adam/AdamW momentum coefficients (β1, β2), each in [0, 1).
        weight_decay: L2 penalty (decoupled for AdamW).
        momentum: Momentum for SGD and RMSprop.
        algorithm: Which torch.optim class to use.
        lr_schedule: How the learning rate moves over training, once per global step (generator
            update, so a critic stepped n_critic times per step follows the same clock):
            "constant"; "linear" decay to 0 (the WGAN-GP reference code's schedule); "cosine"
            annealing to 0. It stays at 0 after ``schedule_steps``.
        schedule_steps: Global steps over which the schedule reaches 0 (default: the trainer's
            ``max_steps``).
    """

    lr: PositiveFloat = 2e-4
    betas: tuple[ClosedUnitInterval, ClosedUnitInterval] = (0.5, 0.999)
    weight_decay: NonNegativeFloat = 0.0
    momentum: ClosedUnitInterval = 0.0
    algorithm: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    schedule_steps: PositiveInt | None = None

    def __post_init__(self) -> None:
        # jsonargparse passes float subclasses (PositiveFloat); checkpoints must hold plain floats.
        object.__setattr__(self, "lr", float(self.lr))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        object.__setattr__(self, "weight_decay", float(self.weight_decay))
        object.__setattr__(self, "momentum", float(self.momentum))
        if self.schedule_steps is not None:
            object.__setattr__(self, "schedule_steps", int(self.schedule_steps))
        if self.lr <= 0:
            raise ValueError(f"optimizer lr must be positive, got {self.lr}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"optimizer betas must each lie in [0, 1), got {self.betas}")

    def build(self, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        if self.algorithm == "adam":
            return torch.optim.Adam(parameters, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)
        if self.algorithm == "adamw":
            return torch.optim.AdamW(parameters, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)
        if self.algorithm == "rmsprop":
            return torch.optim.RMSprop(parameters, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        return torch.optim.SGD(parameters, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    def build_schedule(self, optimizer: torch.optim.Optimizer, max_steps: int, network: str) -> LRScheduler | None:
        """The learning-rate scheduler of ``lr_schedule`` (None for "constant"), to be stepped once per global step."""
        if self.lr_schedule == "constant":
            return None
        steps = self.schedule_steps or (max_steps if max_steps > 0 else None)
        if steps is None:
            raise ValueError(
                f"the {network}'s optimizer has lr_schedule={self.lr_schedule!r}, which decays over a number of "
                f"steps: set trainer.max_steps, or that optimizer's schedule_steps."
            )
        if self.lr_schedule == "linear":
            return torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=0.0, total_iters=steps)
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)


# Checkpoints store hyper-parameters; let torch.load(weights_only=True) accept this class.
torch.serialization.add_safe_globals([OptimizerConfig])
