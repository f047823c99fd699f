"""Disentanglement scores of the model's codes on the datamodule's ground truth, during training and
under ``validate``/``test``."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from jsonargparse.typing import PositiveInt
from pytorch_lightning.utilities import rank_zero_info

from callbacks.periodic import EvaluationCallback
from metrics import METRICS, DisentanglementMetric, MetricName, ProtocolName


class DisentanglementEvaluation(EvaluationCallback):
    """β-VAE, FactorVAE, MIG, SAP and DCI scores every ``every_n_steps`` steps and at the end of fit.

    Codes are ``pl_module.encode(x)`` (the posterior mean), computed without gradients in eval mode
    on the module's device; observations come from ``trainer.datamodule.ground_truth``. Under DDP
    each process encodes a disjoint share of the samples and every process gets the scores of one
    process with the same seed. Scores are logged to every logger as
    ``disentanglement/<protocol>/<key>`` (e.g. ``disentanglement/disentanglement_lib/mig``),
    appended to the run folder's scores.csv, printed, and put in ``trainer.callback_metrics`` (so a checkpoint can monitor them).

    Under ``validate`` and ``test`` the scores are computed once and logged as
    ``val/disentanglement/...`` or ``test/disentanglement/...``: the same numbers for both, since the
    observations are rendered from factors drawn from the whole factor space (the ground truth's
    generative process, as disentanglement_lib does), not read from a split.

    Args:
        metrics: Which scores to compute (keys of ``metrics.METRICS``).
        protocol: ``disentanglement_lib`` or ``infogan_cr`` (``metrics.PROTOCOLS``; see ``metrics.disentanglement``).
        seed: Seed of the sampled factors and classifiers: the same samples at every evaluation.
        sizes: Per metric, overrides of the protocol's sample counts and batch sizes, e.g.
            ``{"dci": {"num_train": 2000, "num_test": 1000}}``.
        batch_size: Observations encoded per forward pass.
        every_n_steps: Cadence in training steps; None: only at the end of fit.
        at_start: Also score the model before its first update (step 0; see ``PeriodicCallback``).

    Raises:
        ValueError: ``sizes`` for a metric not among ``metrics``. TypeError: at setup, a model without an encoder or data without known factors (outside the CLI, which checks first).
    """

    #: Every size the metrics take (a default left in, e.g. FactorVAE's num_eval 5000, would encode 20,000 images).
    fast_dev_run_sizes = {"sizes": {"beta_vae": {"batch_size": 2, "num_train": 6, "num_eval": 4},
                                    "factor_vae": {"batch_size": 4, "num_train": 6, "num_eval": 4, "num_variance_estimate": 32},
                                    "mig": {"num_train": 32}, "sap": {"num_train": 32, "num_test": 16},
                                    "dci": {"num_train": 32, "num_test": 16}}}

    def __init__(
        self,
        metrics: list[MetricName] = ["beta_vae", "factor_vae", "mig", "sap", "dci"],  # noqa: B006 (never mutated)
        protocol: ProtocolName = "disentanglement_lib",
        seed: int = 0,
        sizes: dict[str, dict[str, int | float]] | None = None,
        batch_size: PositiveInt = 256,
        every_n_steps: PositiveInt | None = 5000,
        at_start: bool = False,
    ) -> None:
        super().__init__(every_n_steps, at_start)
        unknown = sorted(set(sizes or {}) - set(metrics))
        if unknown:
            raise ValueError(f"sizes given for {unknown}, which are not among the metrics {list(metrics)}")
        self.metric_names, self.protocol, self.seed = list(metrics), protocol, seed
        self.sizes, self.batch_size = dict(sizes or {}), batch_size
        self.metrics: list[DisentanglementMetric] = []
        #: The scores of the last evaluation, by logged key.
        self.scores: dict[str, float] = {}

    def check_inputs(self, pl_module, datamodule) -> list[str]:
        """A model with an encoder, data with known factors (the CLI asks before the run starts)."""
        problems = []
        if not callable(getattr(pl_module, "encode", None)):
            problems.append(
                f"DisentanglementEvaluation needs a model with an encoder (an `encode` method); "
                f"{type(pl_module).__name__} has none: remove the callback from the config."
            )
        if getattr(datamodule, "ground_truth", None) is None:
            problems.append(
                f"DisentanglementEvaluation needs a datamodule with known factors (a `ground_truth`, as the dSprites, "
                f"3D Shapes, MPI3D, SmallNORB and Cars3D datamodules have); {type(datamodule).__name__} has none: "
                "remove the callback from the config."
            )
        return problems

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Checks the model and data (as :meth:`check_inputs`) before the first evaluation.

        Raises:
            TypeError: every problem :meth:`check_inputs` finds, in one message.
        """
        if problems := self.check_inputs(pl_module, trainer.datamodule):
            raise TypeError("\n".join(problems))
        super().setup(trainer, pl_module, stage)
        ground_truth = trainer.datamodule.ground_truth
        self.metrics = [
            METRICS[name](ground_truth, protocol=self.protocol, seed=self.seed, **self.sizes.get(name, {}))
            for name in self.metric_names
        ]

    def compute_scores(self, trainer: pl.Trainer, pl_module: pl.LightningModule, split: str) -> dict[str, float]:
        scores = {}
        with torch.no_grad(), pl_module.evaluating():
            for metric in self.metrics:
                metric.to(pl_module.device).reset()
                metric.observe(pl_module.encode, batch_size=self.batch_size, rank=trainer.global_rank,
                               world_size=trainer.world_size, device=pl_module.device)
                for key, value in metric.compute().items():
                    scores[f"disentanglement/{self.protocol}/{key}"] = float(value)
        self.scores = scores
        rank_zero_info(f"step {getattr(pl_module, 'trained_steps', trainer.global_step)}: " + "  ".join(f"{key.rsplit('/', 1)[1]} {value:.3f}" for key, value in scores.items()))
        return scores
