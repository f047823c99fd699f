"""Preemption: SIGTERM (or SIGUSR1) saves a checkpoint at the end of the current batch and exits,
where the requeued job will resume from it.

Lightning already turns SIGTERM into a clean stop at the next batch boundary (``SIGTERMException``)
and forwards it to the processes it launched; under SLURM with ``auto_requeue`` it answers the
requeue signal (SIGUSR1) itself by saving ``hpc_ckpt_N.ckpt`` and running ``scontrol requeue``, and
a requeued job resumes from the newest of those without ``--ckpt_path``. This callback adds the
checkpoint for SIGTERM, which Lightning leaves to the user, at the path the next job reads:

- under SLURM, the next ``hpc_ckpt_N.ckpt`` in ``default_root_dir`` (resumed automatically);
- elsewhere (torchrun, Kubernetes, a workstation), ``last.ckpt`` in the ModelCheckpoint folder
  (resumed by ``--ckpt_path last``).

Outside SLURM, SIGUSR1 is treated as SIGTERM, so a job script can send either.
"""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.connectors.checkpoint_connector import _CheckpointConnector
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from lightning_modules.checkpoints import checkpoint_directory


class PreemptionCheckpoint(pl.Callback):
    """Saves a resumable checkpoint when the run is stopped by SIGTERM (or SIGUSR1 outside SLURM)."""

    def __init__(self) -> None:
        self._installed_sigusr1 = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._under_slurm(trainer) and signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGUSR1, lambda signum, frame: signal.raise_signal(signal.SIGTERM))
            self._installed_sigusr1 = True

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return  # a crash mid-step leaves no consistent state to resume from
        path = self.resume_path(trainer)
        trainer.save_checkpoint(path)
        rank_zero_info(f"Preempted at step {trainer.global_step}: saved {path}")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._installed_sigusr1:
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
            self._installed_sigusr1 = False

    def resume_path(self, trainer: pl.Trainer) -> str:
        """Where the requeued job will look first."""
        if self._under_slurm(trainer):
            return _CheckpointConnector.hpc_save_path(trainer.default_root_dir)
        return os.fspath(checkpoint_directory(trainer) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}")

    @staticmethod
    def _under_slurm(trainer: pl.Trainer) -> bool:
        return isinstance(trainer._accelerator_connector.cluster_environment, SLURMEnvironment)
