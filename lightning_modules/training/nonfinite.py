"""What a NaN or infinite loss or gradient does to a run (``GenerativeModule``'s ``nonfinite_loss``).

Detected at the update it happens in, on the gradients each optimizer would step with (averaged
across processes first, so every process takes the same decision), and logged with the step number
and what went bad. "stop" skips that update, writes ``nonfinite-step=N.ckpt`` (the last good state)
beside the other checkpoints at the end of the batch and stops; "skip" skips it and goes on.

When the host learns of it is ``nonfinite_sync``: "every_update" reads the flags once per update
(exact: a skipped update is no step, and "stop" stops after that batch); "logging_steps" keeps them
on the device (no host synchronisation in the step): the update is skipped there, and the host
reads the record at each logged row (see :meth:`NonfinitePolicy.record`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
from pytorch_lightning.utilities.rank_zero import rank_zero_warn
from torch import Tensor

from lightning_modules.training.checkpoints import checkpoint_directory

#: What a non-finite update does: "stop" after the batch with a checkpoint, or "skip" it and go on.
NonfiniteAction = Literal["stop", "skip"]
#: When the host reads the non-finite flags: after every update, or at the logged rows only.
NonfiniteSync = Literal["every_update", "logging_steps"]


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

    def __init__(self, action: NonfiniteAction, sync: NonfiniteSync = "every_update") -> None:
        self.action, self.sync = action, sync
        #: Updates skipped so far in this process's run (under "logging_steps": as of the last read).
        self.skipped = 0
        self.stop_step: int | None = None
        self._stop_reason = ""
        # "logging_steps": the device's record since the last read, float64 [count, then the first
        # bad update's step, loss, loss-finite flag, index into _updates, bit mask of bad gradients]
        self._record: Tensor | None = None
        self._updates: list[tuple[str, ...]] = []  # the networks of each kind of update seen
        self._read_step = 0  # the step of the last read that found skipped updates

    def skip(self, networks: Sequence[str], loss: Tensor | float, bad_gradients: Sequence[str], step: int, count: int = 1) -> bool:
        """Record ``count`` skipped updates, the first of ``networks`` at global step ``step``, and
        warn (rank zero): ``bad_gradients`` names the networks whose gradients are non-finite though
        the loss is finite; empty when the loss itself is. Returns whether training is to stop."""
        action = "stopping" if self.action == "stop" else "skipped"
        if self.action == "stop" and self.sync == "every_update":
            action = "stopping after this batch"
        loss = float(loss)
        reason = f"non-finite gradient of {', '.join(bad_gradients)}" if bad_gradients else "non-finite loss"
        detail = f"loss {loss:.6g}" if bad_gradients else f"{loss}"
        more = f" ({count - 1} more skipped since, until the logged row at step {self._read_step})" if count > 1 else ""
        rank_zero_warn(
            f"{reason} ({detail}) at step {step} in the update of {', '.join(networks)}: {action}{more}. "
            f"(nonfinite_loss={self.action!r}; a lower learning rate or gradient_clip_norm may help)"
        )
        self.skipped += count
        if self.action == "stop" and self.stop_step is None:
            self.stop_step, self._stop_reason = step, reason
        return self.stop_step is not None

    def record(self, flags: Tensor, networks: Sequence[str], loss: Tensor, step: int) -> Tensor:
        """("logging_steps") Note this update's flags (loss flag, then one per network, as
        ``nonfinite_gradients`` gives them) on the device, and return whether to apply it: a
        0-dim bool tensor, False for a non-finite update and, under "stop", for every update after
        one (the weights stay the last good state until the host reads the record and stops)."""
        networks = tuple(networks)
        if networks not in self._updates:
            self._updates.append(networks)
        record = self._record if self._record is not None else torch.zeros(6, dtype=torch.float64, device=flags.device)
        bad = flags.any()
        bits = ((flags[1:] > 0).double() * 2.0 ** torch.arange(len(flags) - 1, device=flags.device)).sum()
        known = torch.full((2,), float(step), dtype=torch.float64, device=flags.device)  # a fill: no copy from the host
        known[1] = self._updates.index(networks)
        first = torch.stack([record[0] + 1, known[0], loss.detach().double().reshape(()), flags[0].double(), known[1], bits])
        later = torch.cat([record[:1] + bad.double(), record[1:]])
        self._record = torch.where(bad & (record[0] == 0), first, later)
        if self.action == "stop":
            return ~bad & (record[0] == 0)
        return ~bad

    def read(self, step: int) -> bool:
        """("logging_steps") Bring the record to the host (one synchronisation), warn about what it
        holds and start a new one. Returns whether training is to stop."""
        if self._record is None:
            return self.stop_step is not None
        count, first_step, loss, loss_bad, update, bits = self._record.tolist()
        self._record = None
        if count:
            self._read_step = step
            networks = self._updates[int(update)]
            bad_gradients = [] if loss_bad else [name for i, name in enumerate(networks) if int(bits) >> i & 1]
            if self.skip(networks, loss, bad_gradients, int(first_step), int(count)):
                # every update since the bad one was skipped: this step's state is the last good one
                self.stop_step, self._stop_reason = step, f"{self._stop_reason} at step {int(first_step)}"
        return self.stop_step is not None

    @contextmanager
    def applied_where(self, keep: Tensor | None, optimizers: Sequence[torch.optim.Optimizer]) -> Iterator[None]:
        """The optimizers step within the block; where ``keep`` (a 0-dim bool tensor from
        :meth:`record`) is False, their parameters and states are as before it: an update skipped
        on the device. Fused optimizers skip it themselves (``found_inf``, as under torch's
        GradScaler); the others are restored from a copy taken before the step. ``None``: as usual."""
        if keep is None:
            yield
            return
        fused = [o for o in optimizers if any(group.get("fused") for group in o.param_groups)]
        for optimizer in fused:
            optimizer.found_inf = (~keep).float()
        restored = [o for o in optimizers if o not in fused]
        before = [(o, p, p.detach().clone(), {k: v.clone() for k, v in o.state[p].items() if isinstance(v, Tensor)})
                  for o in restored for group in o.param_groups for p in group["params"]]
        try:
            yield
        finally:
            for optimizer in fused:
                del optimizer.found_inf
        with torch.no_grad():
            for optimizer, parameter, value, state in before:
                parameter.copy_(torch.where(keep, parameter, value))
                for key, new in optimizer.state[parameter].items():
                    if isinstance(new, Tensor):  # a state created by this step is as it starts: zeros
                        new.copy_(torch.where(keep, new, state.get(key, torch.zeros_like(new))))

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
