"""The cadence every evaluation callback shares: every ``every_n_steps`` steps and at the end of fit."""

from __future__ import annotations

from abc import ABC, abstractmethod

import pytorch_lightning as pl
import torch
from jsonargparse.typing import PositiveInt


class PeriodicCallback(pl.Callback, ABC):
    """Calls :meth:`run` on every process every ``every_n_steps`` training steps (generator
    updates) and once more at the end of fit, never twice for the same step.

    Args:
        every_n_steps: The cadence in training steps.
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
            self._run_at(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_step != self._last_run_step:
            self._run_at(trainer, pl_module)

    @staticmethod
    def publish(trainer: pl.Trainer, metrics: dict[str, float]) -> None:
        """Scores to ``trainer.callback_metrics`` (a ``ModelCheckpoint`` can monitor them) and to every logger."""
        trainer.callback_metrics.update({name: torch.tensor(value) for name, value in metrics.items()})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def _run_at(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_run_step = trainer.global_step
        self.run(trainer, pl_module)
