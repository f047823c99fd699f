"""What every logged row is indexed by: generator updates (``trainer.global_step``), not batches."""

from __future__ import annotations

import pytorch_lightning as pl
from torch import Tensor
from pytorch_lightning.trainer.connectors.logger_connector.logger_connector import (
    _LoggerConnector,
)


class GeneratorUpdateLogging(_LoggerConnector):
    """Lightning's logger connector with ``trainer.global_step`` (generator updates, see
    ``GenerativeModule.step_network``) as the step of every row it logs and as the unit of
    ``log_every_n_steps``.

    The progress bar's values follow the same cadence: Lightning converts them to Python numbers
    after every batch (a host synchronisation each), this connector at the logged rows.

    Lightning indexes ``self.log`` rows by the batches trained, while ``max_steps``, checkpoints and
    every callback count ``global_step``: with n_critic 5 a loss would sit 5 times further along
    the x-axis than the image and the score of the same moment. Lightning offers no setting for
    this step, only this connector's default: this class is the one place that reaches into the
    trainer's private logger connector (``trainer._logger_connector``); pyproject.toml bounds
    pytorch-lightning to the versions it is tested with.
    """

    #: ``trainer.global_step`` when the current training batch began (None before the first one).
    _global_step_at_batch_start: int | None = None

    @classmethod
    def install(cls, trainer: pl.Trainer) -> None:
        """Make ``trainer`` log this way (its connector keeps its state: only its class changes)."""
        if type(trainer._logger_connector) is _LoggerConnector:
            trainer._logger_connector.__class__ = cls

    def on_batch_start(self, batch, dataloader_idx=None) -> None:
        """Notes the global step before the batch (a batch that made a generator update is logged)."""
        self._global_step_at_batch_start = self.trainer.global_step
        super().on_batch_start(batch, dataloader_idx)

    @property
    def should_update_logs(self) -> bool:
        """In training: whether this batch made a generator update whose count is a multiple of
        ``log_every_n_steps`` (so a logged row holds the generator's loss and the critic's of the
        same batch), or training stops."""
        trainer = self.trainer
        if trainer.log_every_n_steps == 0 or not trainer.training:
            return super().should_update_logs
        start = self._global_step_at_batch_start
        updated = start is not None and trainer.global_step > start
        return (updated and trainer.global_step % trainer.log_every_n_steps == 0) or trainer.should_stop

    def on_batch_end(self) -> None:
        """After each batch: the callback metrics (and the logged ones) refreshed as Lightning does,
        the progress bar's values only at logged rows (Lightning's private result collection, hence
        pyproject's upper bound on pytorch-lightning)."""
        # Lightning's refreshes the progress bar's values after every batch, each one converted to a
        # Python number: a host synchronisation per value and batch. They refresh at the logged rows;
        # the callback and logged values (tensors, no conversion) after every batch, as Lightning's.
        results = self.trainer._results
        if not self.trainer.training or self.should_update_logs or results is None:
            return super().on_batch_end()
        for _, metric in results.valid_items():  # ``_ResultCollection.metrics`` without the progress bar's
            value = results._get_cache(metric, on_step=True)
            if isinstance(value, Tensor):
                name, forked_name = results._forked_name(metric, on_step=True)
                if metric.meta.logger:
                    self._logged_metrics[forked_name] = value
                self._callback_metrics[name] = self._callback_metrics[forked_name] = value
        results.batch = None
        results.batch_size = None

    @property
    def progress_bar_metrics(self):
        """In training, the values of the last logged row (Lightning's would convert the current
        ones at every refresh of the bar: a host synchronisation each)."""
        if self.trainer.training:
            return self._progress_bar_metrics
        return super().progress_bar_metrics

    def log_metrics(self, metrics, step: int | None = None) -> None:
        if metrics and step is None and "step" not in metrics:  # a logged "step" stays the user's choice, as in Lightning
            # with the epoch, as Lightning adds to the rows of its own default step
            # (under validate/test the step of the checkpoint whose model was scored)
            step = getattr(self.trainer.lightning_module, "trained_steps", self.trainer.global_step)
            metrics = {"epoch": self.trainer.current_epoch, **metrics}
        super().log_metrics(metrics, step)
