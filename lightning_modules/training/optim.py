"""Per-network optimizer settings, validated when the config is parsed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from jsonargparse.typing import (
    ClosedUnitInterval,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
)
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
        fused: torch's fused implementation (adam, adamw, sgd; one kernel for the whole update,
            on CUDA and CPU): fewer kernel launches per step, results within float rounding of the
            default (foreach on CUDA) implementation, hence off by default.
    """

    lr: PositiveFloat = 2e-4
    betas: tuple[ClosedUnitInterval, ClosedUnitInterval] = (0.5, 0.999)
    weight_decay: NonNegativeFloat = 0.0
    momentum: ClosedUnitInterval = 0.0
    algorithm: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    schedule_steps: PositiveInt | None = None
    fused: bool = False

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
        if self.fused and self.algorithm == "rmsprop":
            raise ValueError("optimizer fused=True is for adam, adamw and sgd (torch has no fused RMSprop); "
                             "got algorithm='rmsprop': set fused: false")

    def build(self, parameters: Iterable[torch.nn.Parameter], state_on_device: bool = False) -> torch.optim.Optimizer:
        """The torch optimizer of ``algorithm`` over ``parameters`` with these settings.
        ``state_on_device``: keep its step counters with the parameters (torch's ``capturable``;
        fused optimizers do anyway), so that an update can be undone on the device
        (``NonfinitePolicy.applied_where``); torch otherwise keeps them on the host."""
        fast = {"fused": True} if self.fused else {}
        on_device = {"capturable": True} if state_on_device and not self.fused else {}
        if self.algorithm == "adam":
            return torch.optim.Adam(parameters, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay, **fast, **on_device)
        if self.algorithm == "adamw":
            return torch.optim.AdamW(parameters, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay, **fast, **on_device)
        if self.algorithm == "rmsprop":
            return torch.optim.RMSprop(parameters, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay, **on_device)
        return torch.optim.SGD(parameters, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay, **fast)

    def build_schedule(self, optimizer: torch.optim.Optimizer, max_steps: int, network: str) -> LRScheduler | None:
        """The learning-rate scheduler of ``lr_schedule`` (None for "constant"), to be stepped once per global step.

        Raises:
            ValueError: a decaying schedule with neither ``schedule_steps`` nor the trainer's ``max_steps``.
        """
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

    def apply_to_restored(self, optimizer: torch.optim.Optimizer, scheduler: LRScheduler | None, max_steps: int,
                          state_on_device: bool = False) -> None:
        """Make an optimizer and schedule restored from a checkpoint follow these settings where
        they differ from the checkpoint's (a resume with a lower ``lr``, say): their state_dicts
        carry the old ``lr``, ``betas``, ... and the schedule's old base rate and length. The
        schedule keeps its position and gives the rate it gives there from the new base rate.
        Settings equal to the checkpoint's leave everything as restored, bit for bit. ``fused`` and
        ``state_on_device`` (see :meth:`build`) too: the step counters move where they then live."""
        settings = {"betas": self.betas, "weight_decay": self.weight_decay, "momentum": self.momentum}
        implementation = {"fused": self.fused or None, "capturable": state_on_device and not self.fused}
        for group in optimizer.param_groups:
            for key, value in settings.items():
                if key in group and tuple(_as_tuple(group[key])) != tuple(_as_tuple(value)):
                    group[key] = value
            for key, value in implementation.items():
                if key in group and bool(group[key]) != bool(value):
                    group[key] = value if key == "fused" else bool(value)
                    on_device = bool(group.get("fused")) or bool(group.get("capturable"))
                    for parameter in group["params"]:
                        state = optimizer.state.get(parameter, {})
                        if isinstance(state.get("step"), torch.Tensor):
                            state["step"] = state["step"].to(parameter.device if on_device else "cpu", torch.float32)
        if scheduler is None:
            for group in optimizer.param_groups:
                group["lr"] = self.lr
            return
        steps = self.schedule_steps or max_steps
        length = "total_iters" if isinstance(scheduler, torch.optim.lr_scheduler.LinearLR) else "T_max"
        if scheduler.base_lrs == [self.lr] * len(optimizer.param_groups) and getattr(scheduler, length) == steps:
            return
        scheduler.base_lrs = [self.lr] * len(optimizer.param_groups)
        setattr(scheduler, length, steps)
        # the closed form at the schedule's position (torch's own, as for a scheduler built with last_epoch)
        lrs = scheduler._get_closed_form_lr()
        for group, lr in zip(optimizer.param_groups, lrs):
            group["initial_lr"], group["lr"] = self.lr, lr
        scheduler._last_lr = list(lrs)


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


# Checkpoints store hyper-parameters; let torch.load(weights_only=True) accept this class, also by
# the path that checkpoints written before lightning_modules/training/ existed name it by.
torch.serialization.add_safe_globals([OptimizerConfig, (OptimizerConfig, "lightning_modules.optim.OptimizerConfig")])
