"""The cadence every evaluation callback and the checkpoints share: every ``every_n_steps`` steps
(generator updates) and at the end of fit; and what an evaluation callback does under the
``validate`` and ``test`` commands: one evaluation on that split."""

from __future__ import annotations

import csv
from abc import ABC, abstractmethod
from pathlib import Path
from weakref import WeakKeyDictionary

import pytorch_lightning as pl
import torch
from jsonargparse.typing import PositiveInt
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_info


#: Per trainer, the step at which each published score was computed (see :func:`score_step`).
_SCORED_AT: WeakKeyDictionary[pl.Trainer, dict[str, int]] = WeakKeyDictionary()


def score_step(trainer: pl.Trainer, key: str) -> int | None:
    """The step whose model ``trainer.callback_metrics[key]`` describes, for a score published by a
    :class:`PeriodicCallback` (None for any other key): that value stays there until the next
    evaluation, and describes no later step's model."""
    return _SCORED_AT.get(trainer, {}).get(key)


class StepCadence(pl.Callback):
    """Knows whether the batch that just ended made a training step (a generator update).

    With n_critic > 1 the batches after the one that reached step s, critic-only, still see
    ``global_step == s``; so does the first batch of a run resumed from a checkpoint at step s. Work
    due "at step s" belongs to the batch that made step s, and only to it: derived from the step
    before and after each batch, it needs no state in the checkpoint.
    """

    _step_before_batch: int | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._step_before_batch = trainer.global_step

    def made_a_step(self, trainer: pl.Trainer) -> bool:
        """Whether the batch that just ended made a training step."""
        return trainer.global_step != self._step_before_batch

    def reached(self, trainer: pl.Trainer, every_n_steps: int) -> bool:
        """Whether the batch that just ended made a step that is a multiple of ``every_n_steps``."""
        return self.made_a_step(trainer) and trainer.global_step % every_n_steps == 0


class PeriodicCallback(StepCadence, ABC):
    """Calls :meth:`run` on every process every ``every_n_steps`` training steps (generator
    updates) and once more at the end of fit, never twice for the same step.

    Args:
        every_n_steps: The cadence in training steps; None: only at the end of fit.
        at_start: Also before the first update of a run that starts at step 0 (the untrained, or
            warm-started, model): an untrained model's scores are the floor every trained score
            is read against (``python -m lightning_modules.cli.report``).
    """

    #: Where every published score is appended, in the run folder (beside config.yaml).
    scores_file = "scores.csv"

    def __init__(self, every_n_steps: PositiveInt | None = 500, at_start: bool = False) -> None:
        self.every_n_steps = every_n_steps
        self.at_start = at_start
        self._last_run_step: int | None = None

    @abstractmethod
    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The periodic work, at ``trainer.global_step``."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps is not None and self.reached(trainer, self.every_n_steps):
            self._run_at(trainer, pl_module)

    def on_train_start(self, trainer, pl_module) -> None:
        if self.at_start and trainer.global_step == 0 and not trainer.fast_dev_run:
            self._run_at(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_step != self._last_run_step:
            self._run_at(trainer, pl_module)

    @classmethod
    def publish(cls, trainer: pl.Trainer, metrics: dict[str, float]) -> None:
        """Scores to ``trainer.callback_metrics`` (a ``ModelCheckpoint`` can monitor them), to the
        progress bar (after the losses, until the next evaluation), to every logger, and appended
        to ``scores.csv`` in the run folder (``trainer.log_dir``, where config.yaml is), one
        ``step,key,value`` row each.

        The file is what ``lightning_modules.cli.report`` reads offline: W&B keeps them only in its
        binary run file. Lightning's CSVLogger would have to be added to every config, keeps the
        losses with the scores, opens a new version_N folder on every resume and rewrites its
        file when a new key appears; these rows are appended as they come, so a crash keeps every
        score so far and a resumed run continues the same file (the later row of a step wins).
        """
        trainer.callback_metrics.update({name: torch.tensor(value) for name, value in metrics.items()})
        trainer.progress_bar_metrics.update(metrics)
        _SCORED_AT.setdefault(trainer, {}).update(dict.fromkeys(metrics, trainer.global_step))
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        if trainer.fast_dev_run:  # its numbers are a smoke test's, not the run's scores (Lightning logs nothing either)
            return
        # the run folder, as config.yaml is saved in (log_dir is collective: every process asks)
        path = Path(trainer.log_dir or trainer.default_root_dir) / cls.scores_file
        if trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
            new = not path.is_file()
            with open(path, "a", newline="") as file:
                writer = csv.writer(file)
                if new:
                    writer.writerow(["step", "key", "value"])
                writer.writerows([trainer.global_step, key, repr(float(value))] for key, value in metrics.items())

    def _run_at(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_run_step = trainer.global_step
        self.run(trainer, pl_module)


class EvaluationCallback(PeriodicCallback):
    """A score of the model: during fit on the step cadence (published: ``callback_metrics``, the
    progress bar, every logger, at ``trainer.global_step``); under ``validate`` and ``test`` once,
    on that split, logged as ``val/<key>`` or ``test/<key>`` with the model's own held-out numbers
    (Lightning's results table, ``callback_metrics`` and every logger, at the checkpoint's step).

    Under ``trainer.fast_dev_run`` (Lightning's smoke test of a run's code: one batch, no logging or
    checkpoints) the evaluation runs once, at the end, with the constructor arguments in
    :attr:`fast_dev_run_sizes` in place of the configured ones: every code path runs in seconds, and
    its numbers are not scores (no step-0 evaluation, nothing in scores.csv). At the sizes the
    configs give (disentanglement_lib's protocol, FID-10k) a smoke test on a CPU would take minutes
    to hours.
    """

    #: The datamodule split fit's evaluations use.
    fit_split: str = "train"
    #: Constructor arguments at the smallest sizes that still run every code path (``fast_dev_run``).
    fast_dev_run_sizes: dict = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Under ``fast_dev_run``, takes :attr:`fast_dev_run_sizes` for this run."""
        if trainer.fast_dev_run and self.fast_dev_run_sizes:
            vars(self).update(self.fast_dev_run_sizes)
            rank_zero_info(f"fast_dev_run: evaluations at their smoke-test sizes ({type(self).__name__}); the numbers it prints are not scores")

    @abstractmethod
    def compute_scores(self, trainer: pl.Trainer, pl_module: pl.LightningModule, split: str) -> dict[str, float]:
        """The scores of the model as it is now, by logged key, against ``split`` where data enter
        them (its ``<split>_set``); called on every process."""

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.publish(trainer, self.compute_scores(trainer, pl_module, self.fit_split))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # the validate command (fit runs no validation loop)
            self._log_split(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._log_split(trainer, pl_module, "test")

    def _log_split(self, trainer: pl.Trainer, pl_module: pl.LightningModule, split: str) -> None:
        # every process computes the same scores (the metrics sync their states): the mean is the score
        for key, value in self.compute_scores(trainer, pl_module, split).items():
            pl_module.log(f"{split}/{key}", value, sync_dist=True)
