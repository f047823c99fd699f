"""Image callbacks: fixed-noise samples, latent traversals and reconstructions.

Each saves a PNG under ``<default_root_dir>/images/`` and logs the same 8-bit image to every logger
that takes images (W&B, TensorBoard), every ``every_n_steps`` training steps and at the end of fit.
"""

from __future__ import annotations

import inspect
from abc import abstractmethod
from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from jsonargparse.typing import NonNegativeFloat, PositiveInt
from PIL.Image import Image
from pytorch_lightning.callbacks import BasePredictionWriter
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor
from torchvision.transforms.functional import to_pil_image
from torchvision.utils import make_grid

from callbacks.periodic import PeriodicCallback


class ImageGridCallback(PeriodicCallback):
    """The saving and logging every image callback shares; subclasses make the grid."""

    key: str

    @abstractmethod
    def make_grid(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Tensor:
        """A [3, H, W] image in [0, 1]."""

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        step = trainer.global_step
        image = to_image(self.make_grid(trainer, pl_module))
        path = Path(trainer.default_root_dir) / "images" / f"{self.key}_step{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=f"images/{self.key}", images=[image], step=step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(f"images/{self.key}", np.asarray(image), step, dataformats="HWC")


def to_grid(images: Tensor, nrow: int, value_range: tuple[float, float]) -> Tensor:
    """Images [N, C, H, W] with values in ``value_range`` as one grid [3, H', W'] in [0, 1], ``nrow`` images a row, white padding."""
    return make_grid(images.float(), nrow=nrow, normalize=True, value_range=value_range, pad_value=1.0)


def to_image(grid: Tensor) -> Image:
    """A [3, H, W] grid in [0, 1] as the 8-bit image torchvision's ``save_image`` writes (rounded).
    Loggers get this image, not the floats: wandb casts floats to uint8 unscaled (all black), and
    TensorBoard would truncate where the PNG rounds."""
    return to_pil_image(grid.detach().cpu().mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8))


class SampleGrid(ImageGridCallback):
    """Samples from the same fixed noise at every logging step, so grids compare across training.

    Args:
        num_samples: Images in the grid.
        nrow: Images per row.
        seed: Seed of the fixed noise (drawn on the CPU: the same noise on every machine).
        every_n_steps: Logging cadence in training steps.
    """

    key = "samples"

    def __init__(self, num_samples: PositiveInt = 64, nrow: PositiveInt = 8, seed: int = 0, every_n_steps: PositiveInt = 500) -> None:
        super().__init__(every_n_steps)
        self.num_samples, self.nrow, self.seed = num_samples, nrow, seed

    def make_grid(self, trainer, pl_module) -> Tensor:
        images = pl_module.sample(self.num_samples, torch.Generator().manual_seed(self.seed))
        return to_grid(images, self.nrow, pl_module.output_range)


class LatentTraversal(ImageGridCallback):
    """One row per latent dimension, sweeping it while the others stay at a fixed latent.

    Args:
        steps: Images per row.
        dims: The latent dimensions to sweep (default: the model's ``traversal_dims()``).
        seed: Seed of the fixed latent the rows start from.
        every_n_steps: Logging cadence in training steps.
        order: "index": the dimensions in order. "kl": for models with ``code_kl(x)`` (the β-VAE,
            IDGAN-SC from its distiller), the dimensions by how much the code carries about the
            first training batch, KL(q(c_j|x) || N(0, 1)) in nats, largest first; those under
            ``min_kl`` (collapsed to the prior: their rows would not change) are left out.
        min_kl: The KL in nats under which a dimension counts as collapsed ("kl" only).
    """

    key = "traversal"

    def __init__(self, steps: PositiveInt = 7, dims: list[int] | None = None, seed: int = 0, every_n_steps: PositiveInt = 500,
                 order: Literal["index", "kl"] = "index", min_kl: NonNegativeFloat = 0.01) -> None:
        super().__init__(every_n_steps)
        self.steps, self.dims, self.seed, self.order, self.min_kl = steps, dims, seed, order, min_kl
        self._images: Tensor | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Checks the model before the run.

        Raises:
            TypeError: ``order='kl'`` with a model that has no ``code_kl``.
        """
        if self.order == "kl" and not callable(getattr(pl_module, "code_kl", None)):
            raise TypeError(
                f"LatentTraversal(order='kl') needs a model with a posterior over its code (a `code_kl` "
                f"method); {type(pl_module).__name__} has none: use order: index."
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.order == "kl" and self._images is None:
            self._images = batch[0].detach().clone()
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def make_grid(self, trainer, pl_module) -> Tensor:
        images = pl_module.traverse(dims=self.ranked_dims(pl_module), steps=self.steps, generator=torch.Generator().manual_seed(self.seed))
        return to_grid(images.flatten(0, 1), self.steps, pl_module.output_range)

    def ranked_dims(self, pl_module) -> list[int] | None:
        """The dimensions the rows sweep, in row order (None: the model's default)."""
        if self.order == "index" or self._images is None:
            return self.dims
        with torch.no_grad(), pl_module.evaluating():
            kl = pl_module.code_kl(self._images.to(pl_module.device))
        if kl is None:  # a code with no posterior to rank by (IDGAN-SC's codes from the prior)
            return self.dims
        candidates = list(pl_module.traversal_dims() if self.dims is None else self.dims)
        ranked = sorted(candidates, key=lambda dim: -float(kl[dim]))
        return [dim for dim in ranked if kl[dim] >= self.min_kl] or ranked


class Reconstructions(ImageGridCallback):
    """Real images of the first training batch, each followed by the model's reconstruction.

    Needs a model with ``reconstruct(x)`` (one with an encoder), or ``reconstruct(x, labels)`` (a
    conditional one, such as the CVAE: it gets the batch's labels too).

    Args:
        num_images: Real images reconstructed.
        pairs_per_row: (image, reconstruction) pairs per row.
        every_n_steps: Logging cadence in training steps.
    """

    key = "reconstructions"

    def __init__(self, num_images: PositiveInt = 32, pairs_per_row: PositiveInt = 4, every_n_steps: PositiveInt = 500) -> None:
        super().__init__(every_n_steps)
        self.num_images, self.pairs_per_row = num_images, pairs_per_row
        self._originals: Tensor | None = None
        self._labels: Tensor | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Checks the model before the run.

        Raises:
            TypeError: a model without a ``reconstruct`` method.
        """
        if not callable(getattr(pl_module, "reconstruct", None)):
            raise TypeError(
                f"Reconstructions needs a model with an encoder (a `reconstruct` method); "
                f"{type(pl_module).__name__} has none: remove the callback from the config."
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._originals is None:
            self._originals = batch[0][: self.num_images].detach().clone()
            self._labels = batch[1][: self.num_images].detach().clone()
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def make_grid(self, trainer, pl_module) -> Tensor:
        originals = self._originals.to(pl_module.device)
        conditional = "labels" in inspect.signature(pl_module.reconstruct).parameters
        with torch.no_grad(), pl_module.evaluating():
            if conditional:
                reconstructions = pl_module.reconstruct(originals, self._labels.to(pl_module.device))
            else:
                reconstructions = pl_module.reconstruct(originals)
        pairs = torch.stack([originals, reconstructions], 1).flatten(0, 1)
        return to_grid(pairs, 2 * self.pairs_per_row, pl_module.output_range)


class PredictionGrid(BasePredictionWriter):
    """Writes what ``predict`` returns (``GenerativeModule.predict_step``: ``samples``, and for a model
    with an encoder ``inputs``, ``codes`` and ``reconstructions``; ``labels`` for a conditional
    model) under ``<default_root_dir>/predictions/``, per batch and process:
    ``batch<index>_rank<r>.pt`` (the tensors, ``torch.load`` reads them back) and, for image data,
    PNG grids ``samples_batch<index>_rank<r>.png`` and ``reconstructions_batch<index>_rank<r>.png``
    (each input followed by its reconstruction). Every model gets one by default (see
    ``GenerativeModule.configure_callbacks``); a config names it to set ``nrow``.

    Args:
        nrow: Samples per row (``samples_per_label`` puts each label on a row of its own).
    """

    def __init__(self, nrow: PositiveInt = 8) -> None:
        super().__init__(write_interval="batch")
        self.nrow = nrow
        self._written: list[str] = []  # what each batch wrote, for the closing line

    def on_predict_start(self, trainer, pl_module) -> None:
        self._written = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx) -> None:
        folder = Path(trainer.default_root_dir) / "predictions"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"batch{batch_idx:04d}_rank{trainer.global_rank}"
        tensors = {key: value.detach().cpu() for key, value in prediction.items()}
        torch.save(tensors, folder / f"{name}.pt")
        self._written = [f"{name}.pt ({', '.join(tensors)})"]
        if tensors["samples"].dim() != 4:  # not images (e.g. points of the 2-D ring): the tensors only
            return
        to_image(to_grid(tensors["samples"], self.nrow, pl_module.output_range)).save(folder / f"samples_{name}.png")
        self._written.append(f"samples_{name}.png")
        if "reconstructions" in tensors:
            pairs = torch.stack([tensors["inputs"], tensors["reconstructions"]], 1).flatten(0, 1)
            to_image(to_grid(pairs, 2 * (self.nrow // 2 or 1), pl_module.output_range)).save(folder / f"reconstructions_{name}.png")
            self._written.append(f"reconstructions_{name}.png")

    def on_predict_end(self, trainer, pl_module) -> None:
        folder = Path(trainer.default_root_dir) / "predictions"
        batches = len(trainer.predict_loop.max_batches) and sum(trainer.predict_loop.max_batches)
        rank_zero_info(f"predict: wrote {batches} batches to {folder}/, the last as {', '.join(self._written)}")
