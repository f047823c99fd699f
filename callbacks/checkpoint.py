"""The run's checkpoint folder, kept by one callback: every N steps, at the end of fit and on
preemption, with ``last.ckpt`` always the newest state of the run.

Lightning's ModelCheckpoint alone leaves four gaps, each closed here:

- a step's checkpoint is due on every batch that sees ``global_step % N == 0``; with n_critic > 1
  the critic-only batches after it (and the first ones of a run resumed there) see the same step,
  and rewrote it with a later state. Here the batch that made the step saves it, and only that one.
- it writes ``last.ckpt`` at the end of fit only when it has saved nothing before, so a run that
  ends off the N-step grid (or by ``max_epochs``, or a stop) left its final weights in no file.
- a checkpoint written after the last batch (end of fit, or a SIGTERM during an epoch's last
  batch, which Lightning handles after closing the epoch) records loops that have already moved
  on to the next epoch: resumed, it skipped an epoch of data. Such a checkpoint here records the
  loops as they were at the end of the last batch, where every step checkpoint records them.
- a ``last.ckpt`` it did not write itself (a preemption checkpoint saved beside it, a previous
  run's) made it save the next ones as ``last-v1.ckpt``. The preemption checkpoint is now its own,
  and ``last.ckpt`` keeps its name.

Preemption: Lightning turns SIGTERM into a clean stop at the end of the current batch (and forwards
it to the processes it launched); this callback then saves ``last.ckpt`` (resumed by
``--ckpt_path last``) and, under SLURM, also the next ``hpc_ckpt_N.ckpt`` in ``default_root_dir``,
which a requeued job resumes from without ``--ckpt_path``. Outside SLURM, SIGUSR1 acts as SIGTERM;
under SLURM it stays Lightning's requeue signal (``hpc_ckpt_N.ckpt``, then ``scontrol requeue``).
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Any, Iterator

import pytorch_lightning as pl
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.connectors.checkpoint_connector import _CheckpointConnector
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_info, rank_zero_warn

from callbacks.periodic import StepCadence, score_step


class RunCheckpoint(StepCadence, ModelCheckpoint):
    """Lightning's ModelCheckpoint (every argument of it) that also saves ``last.ckpt`` at the end of
    fit and on preemption, never saves a step twice, and always names the newest state ``last.ckpt``
    (see the module docstring).

    Args:
        dirpath: The checkpoint folder; fixed per config, so that ``--ckpt_path last`` finds it.
        every_n_train_steps: Save ``epoch=E-step=S.ckpt`` every this many training steps (generator updates).
        save_top_k: How many step checkpoints to keep (-1: all); with ``monitor`` (e.g. ``fid/fid``,
            ``mode: min``), the best this many by that score. A score of an evaluation callback
            ranks only the checkpoints of the steps it was computed at: give both the same cadence.
        **kwargs: Any other ModelCheckpoint argument but ``save_last`` (always on).
    """

    def __init__(
        self,
        dirpath: str | None = None,
        every_n_train_steps: int | None = None,
        save_top_k: int = -1,
        **kwargs: Any,
    ) -> None:
        super().__init__(dirpath=dirpath, every_n_train_steps=every_n_train_steps, save_top_k=save_top_k, save_last=True, **kwargs)
        self._saved_batch: int | None = None  # the batch whose end state the latest save holds
        self._loops_after_batch: tuple[int, dict] | None = None  # (batch, the fit loop's state at its end)
        self._loops_to_save: dict | None = None
        self._installed_sigusr1 = False

    # ---------------------------------------------------------------------------- the hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if not _under_slurm(trainer) and signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGUSR1, lambda signum, frame: signal.raise_signal(signal.SIGTERM))
            self._installed_sigusr1 = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.made_a_step(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if _may_stop_after_this_batch(trainer):
            # Cheap, and only where Lightning may leave the loop: what a checkpoint written after
            # the loop has ended (end of fit, preemption) must record.
            self._loops_after_batch = (_batch(trainer), trainer.fit_loop.state_dict())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.fast_dev_run:
            self._save_final_state(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            super().on_exception(trainer, pl_module, exception)
            return  # a crash mid-step leaves no consistent state to resume from
        saved = [self._save_final_state(trainer)]
        if _under_slurm(trainer):
            saved.append(_CheckpointConnector.hpc_save_path(trainer.default_root_dir))
            with self._loops_as_after_the_last_batch(trainer):
                trainer.save_checkpoint(saved[-1])
        rank_zero_info(f"Preempted at step {trainer.global_step}: saved {' and '.join(saved)}")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._installed_sigusr1:
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
            self._installed_sigusr1 = False

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if self._loops_to_save is not None:
            checkpoint["loops"]["fit_loop"] = self._loops_to_save

    # ------------------------------------------------------------------------ the bookkeeping
    def _save_final_state(self, trainer: pl.Trainer) -> str:
        """``last.ckpt`` with the state after the last batch, unless the latest save already holds it."""
        if trainer.state.fn == TrainerFn.FITTING and self._saved_batch != _batch(trainer):
            with self._loops_as_after_the_last_batch(trainer):
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        return self.last_model_path

    @contextmanager
    def _loops_as_after_the_last_batch(self, trainer: pl.Trainer) -> Iterator[None]:
        if self._loops_after_batch is not None and self._loops_after_batch[0] == _batch(trainer):
            self._loops_to_save = self._loops_after_batch[1]
        try:
            yield
        finally:
            self._loops_to_save = None

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        self._saved_batch = _batch(trainer)

    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict) -> None:
        # An evaluation callback's score stays in callback_metrics until its next run: ranking a
        # later step's checkpoint by it would keep a model the score never saw.
        scored = score_step(trainer, self.monitor) if self.monitor else None
        if scored is not None and scored != trainer.global_step:
            rank_zero_warn(
                f"RunCheckpoint(monitor={self.monitor!r}) at step {trainer.global_step}: that score was computed at "
                f"step {scored}, so this step is not ranked. Set every_n_train_steps to the cadence (every_n_steps) "
                f"of the callback that computes it.", category=UserWarning,
            )
            return
        super()._save_topk_checkpoint(trainer, monitor_candidates)

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict) -> None:
        # Always last.ckpt: Lightning would pick last-v1.ckpt when a last.ckpt it did not write
        # this run is there, and what reads last.ckpt would get a stale state.
        self.last_model_path = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
        super()._save_last_checkpoint(trainer, monitor_candidates)


def _batch(trainer: pl.Trainer) -> int:
    """The run's latest batch, counted over all epochs (and across resumes)."""
    return trainer.fit_loop.epoch_loop.total_batch_idx


def _may_stop_after_this_batch(trainer: pl.Trainer) -> bool:
    epoch_loop = trainer.fit_loop.epoch_loop
    return (
        trainer.received_sigterm
        or trainer.should_stop
        or epoch_loop.batch_progress.is_last_batch
        or 0 <= trainer.max_steps <= trainer.global_step
    )


def _under_slurm(trainer: pl.Trainer) -> bool:
    # A single-device strategy has no cluster environment; Lightning then detects SLURM itself the same way.
    environment = getattr(trainer.strategy, "cluster_environment", None)
    return isinstance(environment, SLURMEnvironment) if environment is not None else SLURMEnvironment.detect()
