"""The cadence every periodic callback shares: every ``every_n_steps`` training steps and at the end of fit."""

from __future__ import annotations

from abc import ABC, abstractmethod

import pytorch_lightning as pl
from jsonargparse.typing import PositiveInt


class EveryNSteps(pl.Callback, ABC):
    """Calls ``run`` after every ``every_n_steps``-th training step and once more at the end of fit
    (unless that step just ran). Every process calls it, so ``run`` may communicate across ranks.

    Args:
        every_n_steps: Cadence in training steps (``trainer.global_step``).
    """

    def __init__(self, every_n_steps: PositiveInt = 500) -> None:
        self.every_n_steps = every_n_steps
        self._last_run_step: int | None = None

    @abstractmethod
    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The periodic work, at ``trainer.global_step``."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step > 0 and step % self.every_n_steps == 0 and step != self._last_run_step:
            self._run_at_step(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_step != self._last_run_step:
            self._run_at_step(trainer, pl_module)

    def _run_at_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_run_step = trainer.global_step
        self.run(trainer, pl_module)
