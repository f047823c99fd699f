"""Mode coverage of a model trained on a Gaussian mixture (the 2-D ring or grid), during training and
under ``validate``/``test``."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from jsonargparse.typing import PositiveFloat, PositiveInt
from pytorch_lightning.utilities import rank_zero_info

from callbacks.periodic import EvaluationCallback
from metrics.mixture import mixture_coverage, moment_distance


class MixtureEvaluation(EvaluationCallback):
    """The mode-collapse measures of VEEGAN (Srivastava et al. 2017) and Unrolled GAN on ``num_samples``
    samples: ``mixture/modes_covered`` (components with at least one high-quality sample nearest to
    them), ``mixture/high_quality_fraction`` (samples within ``threshold`` standard deviations of their
    nearest centre), and the distances of the first two moments to the split's points,
    ``mixture/mean_distance`` and ``mixture/covariance_distance`` (the training split during fit; the
    val or test split under ``validate``/``test``).

    Args:
        num_samples: Samples per evaluation (VEEGAN: 2500), drawn from ``seed``: the same noise each time.
        threshold: A sample is high-quality within this many standard deviations (VEEGAN: 3).
        seed: Seed of the samples.
        every_n_steps: Cadence in training steps; None: only at the end of fit.
    """

    def __init__(
        self,
        num_samples: PositiveInt = 2500,
        threshold: PositiveFloat = 3.0,
        seed: int = 0,
        every_n_steps: PositiveInt | None = 1000,
    ) -> None:
        super().__init__(every_n_steps)
        self.num_samples, self.threshold, self.seed = num_samples, threshold, seed

    def check_inputs(self, pl_module: pl.LightningModule, datamodule: pl.LightningDataModule) -> list[str]:
        """A datamodule that knows its mixture (``centers`` and ``std``, as GaussianMixtureDataModule)."""
        if getattr(datamodule, "centers", None) is None or getattr(datamodule, "std", None) is None:
            return [
                f"MixtureEvaluation needs Gaussian-mixture data (a datamodule with `centers` and `std`, as "
                f"GaussianMixtureDataModule has); {type(datamodule).__name__} has none: remove the callback from the config."
            ]
        return []

    def compute_scores(self, trainer: pl.Trainer, pl_module: pl.LightningModule, split: str) -> dict[str, float]:
        datamodule = trainer.datamodule
        datamodule.setup(trainer.state.stage or "fit")
        samples = pl_module.sample(self.num_samples, torch.Generator().manual_seed(self.seed)).cpu()
        points = getattr(datamodule, f"{split}_set").x
        scores = {
            **mixture_coverage(samples, datamodule.centers, datamodule.std, self.threshold),
            **moment_distance(samples, points),
        }
        rank_zero_info(f"step {getattr(pl_module, 'trained_steps', trainer.global_step)}: "
                       + "  ".join(f"{key} {value:.3f}" for key, value in scores.items()))
        return {f"mixture/{key}": value for key, value in scores.items()}
