"""What a NaN or infinite loss or gradient does to a run (``GenerativeModule``'s ``nonfinite_loss``).

Detected at the update it happens in, on the gradients each optimizer would step with (averaged
across processes first, so every process takes the same decision), and logged with the step number
and what went bad. "stop" skips that update, writes ``nonfinite-step=N.ckpt`` (the last good state)
beside the other checkpoints at the end of the batch and stops; "skip" skips it and goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch import Tensor

from lightning_modules.training.checkpoints import checkpoint_directory

#: What a non-finite update does: "stop" after the batch with a checkpoint, or "skip" it and go on.
NonfiniteAction = Literal["stop", "skip"]


def nonfinite_gradients(optimizer: torch.optim.Optimizer, like: Tensor) -> Tensor:
    """1.0 if any gradient of the optimizer's parameters is NaN or infinite, else 0.0: a tensor [1]
    of ``like``'s dtype and device (no host synchronisation). Their largest magnitude (one fused
    norm per device and dtype) is finite exactly when all are."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return torch.zeros_like(like)
    largest = torch.nn.utils.get_total_norm(grads, norm_type=float("inf"))
    return (~torch.isfinite(largest)).to(like).reshape(1)


class NonfinitePolicy:
    """The run's record of skipped updates and, under "stop", the step it stops at.

    Args:
        action: "stop" or "skip" (see the module docstring).
    """

    def __init__(self, action: NonfiniteAction) -> None:
        self.action = action
        #: Updates skipped so far in this process's run.
        self.skipped = 0
        self.stop_step: int | None = None
        self._stop_reason = ""

    def skip(self, networks: Sequence[str], loss: Tensor, bad_gradients: Sequence[str], step: int) -> bool:
        """Record a skipped update of ``networks`` at global step ``step`` and warn (rank zero):
        ``bad_gradients`` names the networks whose gradients are non-finite though the loss is
        finite; empty when the loss itself is. Returns whether training is to stop after this batch."""
        action = "stopping after this batch" if self.action == "stop" else "skipped"
        reason = f"non-finite gradient of {', '.join(bad_gradients)}" if bad_gradients else "non-finite loss"
        detail = f"loss {loss.item():.6g}" if bad_gradients else f"{loss.item()}"
        rank_zero_warn(
            f"{reason} ({detail}) at step {step} in the update of {', '.join(networks)}: {action}. "
            f"(nonfinite_loss={self.action!r}; a lower learning rate or gradient_clip_norm may help)"
        )
        self.skipped += 1
        if self.action == "stop" and self.stop_step is None:
            self.stop_step, self._stop_reason = step, reason
        return self.stop_step is not None

    def save_stop_checkpoint(self, trainer: Any) -> None:
        """At the end of the batch that stopped the run (a batch boundary, so that it resumes like
        any step checkpoint): ``nonfinite-step=N.ckpt`` in the run's checkpoint folder, and a
        warning saying how to go on from it. Nothing when the run is not stopping."""
        if self.stop_step is None:
            return
        path = checkpoint_directory(trainer) / f"nonfinite-step={self.stop_step}.ckpt"
        trainer.save_checkpoint(path)
        rank_zero_warn(
            f"stopped at step {self.stop_step} after a {self._stop_reason}; last good state: {path}. "
            f"To go on, resume from it with a lower learning rate or a gradient clip, which take effect on resume: "
            f"--ckpt_path {path} --model.init_args.<network>_optimizer.lr=... or --model.init_args.gradient_clip_norm=..."
        )
