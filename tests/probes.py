"""Callbacks and stand-in models the multi-process tests load by class path (so they must live in an
importable module)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.distributed as dist

from callbacks import DisentanglementEvaluation, PeriodicCallback
from lightning_modules import GenerativeModule, OptimizerConfig
from tests.helpers import TinyAutoencoder

#: The batch (counted over the run) whose loss PoisonedRegression poisons.
POISONED_BATCH = 2


def _gather(flat: torch.Tensor) -> list[torch.Tensor]:
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return gathered


class RankConsistency(pl.Callback):
    """After every training batch, compares every rank's weights and gradients with rank 0's;
    at the end each rank saves what it saw to ``out_dir/rank{N}.pt``.

    Args:
        out_dir: Where each rank writes its report.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.max_weight_difference = 0.0
        self.max_gradient_difference = 0.0
        self.first_batch_sum: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.first_batch_sum is None:
            self.first_batch_sum = batch[0].double().sum().item()
        parameters = list(pl_module.parameters())
        weights = torch.cat([p.detach().reshape(-1) for p in parameters])
        grads = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in parameters])
        for name, flat in (("weight", weights), ("gradient", grads)):
            gathered = _gather(flat)
            difference = max((g - gathered[0]).abs().max().item() for g in gathered)
            attribute = f"max_{name}_difference"
            setattr(self, attribute, max(getattr(self, attribute), difference))

    def on_train_end(self, trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "state_dict": pl_module.state_dict(),
                "max_weight_difference": self.max_weight_difference,
                "max_gradient_difference": self.max_gradient_difference,
                "first_batch_sum": self.first_batch_sum,
                "global_step": trainer.global_step,
                "world_size": trainer.world_size,
                "cluster_environment": type(trainer.strategy.cluster_environment).__name__,
            },
            self.out_dir / f"rank{trainer.global_rank}.pt",
        )


class TinyFeatures(torch.nn.Module):
    """A fast stand-in for the Inception: uint8 [N, 3, H, W] -> [N, 2 * channels] (mean and std
    of a random convolution's maps), with weights fixed by ``seed``.

    Args:
        channels: Convolution channels.
        seed: Seed of the weights (independent of the global RNG).
    """

    def __init__(self, channels: int = 8, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv = torch.nn.Conv2d(3, channels, kernel_size=5, stride=2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = torch.tanh(self.conv(images.float() / 127.5 - 1.0)).flatten(2)
        return torch.cat([maps.mean(2), maps.std(2)], dim=1)


class FixedCodesAutoencoder(TinyAutoencoder):
    """A stand-in whose codes do not change with training (image size 64): the mean of each image
    quadrant and half, so that runs on any number of processes must give the same scores."""

    def __init__(self) -> None:
        super().__init__(image_size=64, latent_dim=6)

    def encode(self, x):
        top, left = x[..., :32, :], x[..., :32]
        quadrants = [x[..., rows, cols] for rows in (slice(0, 32), slice(32, 64)) for cols in (slice(0, 32), slice(32, 64))]
        return torch.stack([part.mean(dim=(1, 2, 3)) for part in (*quadrants, top, left)], dim=1)


class SaveScores(pl.Callback):
    """At the end of fit each rank saves the scores of the trainer's DisentanglementEvaluation to
    ``out_dir/rank{N}.pt`` (list it after that callback).

    Args:
        out_dir: Where each rank writes its scores.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_train_end(self, trainer, pl_module) -> None:
        (evaluation,) = [c for c in trainer.callbacks if isinstance(c, DisentanglementEvaluation)]
        self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.save({"scores": evaluation.scores, "world_size": trainer.world_size}, self.out_dir / f"rank{trainer.global_rank}.pt")


def neyman_chi2_in_two_steps(v: torch.Tensor) -> torch.Tensor:
    """f-GAN's Neyman χ² f*(g_f(v)) = 2 - 2 sqrt(1 - g_f(v)), g_f(v) = 1 - exp(-v), as two rounded
    steps: at v = 17 in float32 g_f(v) rounds to 1, the value is 2.0 and the gradient NaN."""
    return 2 - 2 * torch.sqrt(1 - (-torch.expm1(-v)))


class PoisonedRegression(GenerativeModule):
    """Fits a linear generator to the batch; at batch ``POISONED_BATCH`` (on every process, or only
    on ``poisoned_rank``) the loss is multiplied by ``poison``, or, with ``poisoned="gradient"``,
    gains a finite term with a NaN gradient (:func:`neyman_chi2_in_two_steps` at v = 17).

    Args:
        poison: The factor (NaN, inf, or 1.0 for a clean run).
        image_size: Side of the one-channel images.
        poisoned_rank: The only process whose loss is poisoned (default: all).
        poisoned: What goes bad: the loss, or only its gradient.
    """

    def __init__(
        self,
        poison: float = float("nan"),
        image_size: int = 16,
        poisoned_rank: int | None = None,
        poisoned: str = "loss",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.latent_dim, self.data_shape, self.poison = 2, (1, image_size, image_size), poison
        self.poisoned_rank, self.poisoned = poisoned_rank, poisoned
        self.generator = torch.nn.Linear(2, image_size * image_size)
        self.optimized_networks = {"generator": OptimizerConfig(lr=1e-2)}

    def training_step(self, batch, batch_idx):
        real = batch[0]
        with self.optimize("generator") as step:
            loss = (self.generator(self.sample_latent(len(real))).view_as(real) - real).pow(2).mean()
            poisoned = self.poisoned_rank is None or self.poisoned_rank == self.global_rank
            if poisoned and self.trainer.fit_loop.epoch_loop.total_batch_idx == POISONED_BATCH:
                if self.poisoned == "gradient":
                    loss = loss + neyman_chi2_in_two_steps(17.0 + 0.0 * loss)
                else:
                    loss = loss * self.poison
            step(loss)


class PauseAtStep(pl.Callback):
    """At ``step``, writes ``ready_file`` and waits (up to ``timeout`` s) for a signal to arrive:
    a fixed point mid-epoch at which a test can preempt the run from outside.

    Args:
        step: The global step to pause after.
        ready_file: Written when the pause starts.
        timeout: Seconds to wait before going on.
    """

    def __init__(self, step: int, ready_file: str, timeout: float = 60.0) -> None:
        self.step, self.ready_file, self.timeout = step, Path(ready_file), timeout

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.step or self.ready_file.exists():
            return
        self.ready_file.write_text(str(os.getpid()))
        deadline = time.monotonic() + self.timeout
        while not trainer.received_sigterm and time.monotonic() < deadline:
            time.sleep(0.05)


class SaveWeights(pl.Callback):
    """Saves the module's state_dict and the step count to ``path`` when training ends.

    Args:
        path: The output file.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_end(self, trainer, pl_module) -> None:
        torch.save({"state_dict": pl_module.state_dict(), "global_step": trainer.global_step}, self.path)


class RecordSteps(PeriodicCallback):
    """A periodic callback whose work is to append the step it acts at to ``path`` (one line each),
    so that the steps it acted at can be read across runs and resumes.

    Args:
        path: The file to append to.
        every_n_steps: The cadence in training steps.
    """

    def __init__(self, path: str, every_n_steps: int = 500) -> None:
        super().__init__(every_n_steps)
        self.path = Path(path)

    def run(self, trainer, pl_module) -> None:
        with self.path.open("a") as file:
            file.write(f"{trainer.global_step}\n")


class PreemptAfterBatch(pl.Callback):
    """Raises Lightning's SIGTERM flag at the end of batch ``batch`` (counted over the run from 1),
    as a SIGTERM arriving during that batch would.

    Args:
        batch: The batch after which the run is preempted.
    """

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.total_batch_idx + 1 == self.batch:
            trainer._signal_connector.received_sigterm = True


class RecordGradientNorms(pl.Callback):
    """Appends to ``path`` the gradient norm each optimizer steps with (after clipping: read inside
    the optimizer's own ``step``), one line per update.

    Args:
        path: The file to append to.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_start(self, trainer, pl_module) -> None:
        for optimizer in trainer.optimizers:
            optimizer.step = self._recording(optimizer, optimizer.step)

    def _recording(self, optimizer, step):
        # Lightning's precision plugin passes the hooks (clipping among them) as the step's closure.
        def recording_step(closure=None, **kwargs):
            def recording_closure():
                result = closure() if closure is not None else None
                grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
                with self.path.open("a") as file:
                    file.write(f"{torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item()}\n")
                return result

            return step(closure=recording_closure, **kwargs)

        return recording_step
