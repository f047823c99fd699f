"""A callback that times training steps after a warm-up, shared by the benchmarks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytorch_lightning as pl
import torch


class StepTimer(pl.Callback):
    """Seconds per training batch over the batches after ``warmup``; rank 0 writes them to ``out``.

    Args:
        warmup: Batches not timed.
        out: Optional JSON file for the result (for benchmarks that run the CLI in a subprocess).
    """

    def __init__(self, warmup: int = 5, out: str | None = None) -> None:
        self.warmup, self.out = warmup, out
        self.start: float | None = None
        self.timed_batches = 0
        self.seconds = float("nan")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.total_batch_idx == self.warmup:
            _synchronize(pl_module)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.start is not None:
            self.timed_batches += 1

    def on_train_end(self, trainer, pl_module) -> None:
        if self.start is None or self.timed_batches == 0:
            raise RuntimeError(f"StepTimer: train for more than warmup={self.warmup} batches")
        _synchronize(pl_module)
        self.seconds = (time.perf_counter() - self.start) / self.timed_batches
        if self.out and trainer.is_global_zero:
            Path(self.out).write_text(json.dumps({"seconds_per_batch": self.seconds, "batches": self.timed_batches}))


def _synchronize(module: pl.LightningModule) -> None:
    """On a GPU the host runs ahead: time what the device has done."""
    if module.device.type == "cuda":
        torch.cuda.synchronize(module.device)
