"""``python -m lightning_modules fit|validate|test|predict --config configs/X.yaml``."""

from __future__ import annotations

import torch
import wandb
from pytorch_lightning import LightningDataModule
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback
from pytorch_lightning.trainer.states import TrainerFn

import datamodules  # noqa: F401  (makes every datamodule selectable by class name)
from lightning_modules.base import GenerativeModule
from lightning_modules.loggers import WandbLogger


class UploadConfig(SaveConfigCallback):
    """Saves config.yaml in the run directory and uploads the full config to every logger."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": self.config.as_dict()})


class CLI(LightningCLI):
    def __init__(self, args=None, run: bool = True) -> None:
        super().__init__(
            GenerativeModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=UploadConfig,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    def before_fit(self) -> None:
        """A resumed run continues the W&B run its checkpoint was written under."""
        checkpoint = self._resume_checkpoint()
        run_id = checkpoint.get("wandb_run_id") if checkpoint else None
        if run_id:
            for logger in self.trainer.loggers:
                if isinstance(logger, WandbLogger):
                    logger.resume_run(run_id)

    def _resume_checkpoint(self) -> dict | None:
        """The checkpoint ``fit`` will resume from (``--ckpt_path`` path, "last", or SLURM's "hpc"),
        memory-mapped, or None."""
        requested = self.config[self.subcommand].get("ckpt_path")
        path = self.trainer._checkpoint_connector._parse_ckpt_path(
            TrainerFn.FITTING, requested, model_provided=True, model_connected=False
        )
        if not path:
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # unreadable: fit's own loading reports it
            return None


def main(args=None) -> None:
    """One CLI command; its W&B run ends with it (so a second command in the same process, as in a
    notebook, starts a run of its own instead of appending to this one)."""
    try:
        CLI(args=args)
    except BaseException:
        if wandb.run is not None:
            wandb.finish(exit_code=1)
        raise
    if wandb.run is not None:
        wandb.finish()
