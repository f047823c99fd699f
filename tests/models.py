"""The registry of models that the cross-cutting suites draw from: exact resume (test_resume.py),
mixed precision (test_precision.py), two-process DDP (test_ddp.py) and validate/test/predict from a
checkpoint (test_subcommands.py).

Why one registry, here: those suites kept their own lists (18 resume cases, 15 DDP models, 15
subcommand cases) that drifted, and nothing made a new model join them. A model joins every suite
with one entry below, and tests/test_registry.py fails until every model the package defines has
one. It lives in tests/ because its settings are the tests' (tiny networks, a few images); it holds
data, no tests, so that no test module imports another.

Each entry: the model class, tiny init arguments (images of 32 px where the networks allow, 64 px
for the InfoGAN-CR networks and FactorVAE's case), and the value range of the data it generates.
Several entries of one class cover states that must survive a resume (EMA, schedules, boosted
rounds, annealing, a frozen distiller).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytorch_lightning.utilities.seed import isolate_rng

from lightning_modules import (
    CLR, CVAE, DCGAN, EBGAN, FGAN, IDGANSC, LSGAN, VAEGAN, WGAN, WGANGP, BetaVAE, BiGAN, FactorVAE, InfoGAN, InfoGANCR,
    InfoGANSC, KLAnnealing, LatentConstraints, OptimizerConfig,
)
from lightning_modules.base import GenerativeModule
from lightning_modules.training.contrastive import SupervisedContrastive
from lightning_modules.training.pretrained_vae import PretrainedVAE
from tests.helpers import RandomImages, quiet_trainer

SIGNED, UNIT = (-1.0, 1.0), (0.0, 1.0)
SMALL = dict(data_shape=(1, 32, 32), width=4)
TINY_CONTRASTIVE = SupervisedContrastive(num_pairs=8, representation_dim=8)


@dataclass(frozen=True)
class Entry:
    """One registered model.

    Args:
        model: The class.
        init_args: Tiny settings (a ``data_shape`` of one channel).
        value_range: Of the data the model generates and trains on.
        all_trained_from: The generator step from which every network trains (a regulariser that
            switches on later); a suite that checks every network runs past it.
    """

    model: type[GenerativeModule]
    init_args: dict[str, Any] = field(default_factory=dict)
    value_range: tuple[float, float] = SIGNED
    all_trained_from: int = 0

    @property
    def size(self) -> int:
        return self.init_args["data_shape"][1]

    @property
    def needs_vae(self) -> bool:
        """Built on a frozen β-VAE read from a checkpoint file (IDGAN-SC's distiller, latent constraints)."""
        return issubclass(self.model, PretrainedVAE) and self.init_args.get("code_source") != "prior"

    def arguments(self, directory: Path) -> dict[str, Any]:
        """``init_args``, with a tiny β-VAE checkpoint (written in ``directory``) where the model needs one."""
        if not self.needs_vae:
            return dict(self.init_args)
        return {**self.init_args, self.model.frozen_vae.checkpoint_argument: vae_checkpoint(self, directory)}

    def build(self, directory: Path) -> GenerativeModule:
        return self.model(**self.arguments(directory))

    def config(self, directory: Path) -> dict[str, Any]:
        """The model's entry of a CLI config."""
        return {"class_path": f"lightning_modules.{self.model.__name__}", "init_args": as_config(self.arguments(directory))}

    @property
    def images(self) -> int:
        """Images a suite trains on, 8 a batch: 6 batches at 32 px, 3 at 64 px (slower networks)."""
        return {32: 48, 64: 24}[self.size]

    def data(self) -> RandomImages:
        return RandomImages(size=self.size, n=self.images, batch_size=8, value_range=self.value_range)


def vae_checkpoint(entry: Entry, directory: Path) -> str:
    """A β-VAE of the entry's code size and image shape after one training step, written once per directory."""
    latent_dim, data_shape = entry.init_args[entry.model.frozen_vae.latent_argument], entry.init_args["data_shape"]
    path = Path(directory) / f"vae_{latent_dim}_{data_shape[1]}.ckpt"
    if not path.exists():
        with isolate_rng():  # the model built next gets the same weights whether the file was there or not
            trainer = quiet_trainer(max_steps=1)
            trainer.fit(BetaVAE(latent_dim=latent_dim, data_shape=data_shape, width=4), RandomImages(size=data_shape[1], value_range=UNIT))
        trainer.save_checkpoint(path)
    return str(path)


def as_config(value: Any) -> Any:
    """A value as a YAML config writes it: dataclasses (optimizers, schedules) as dicts, tuples as lists."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {key: as_config(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_config(item) for item in value]
    return value


MODELS: dict[str, Entry] = {
    "dcgan-ema": Entry(DCGAN, dict(SMALL, latent_dim=6, ema_decay=0.9)),
    # the schedulers' positions are part of the state (the resume test compares the learning rates too)
    "dcgan-lr-schedules": Entry(DCGAN, dict(
        SMALL, latent_dim=6,
        generator_optimizer=OptimizerConfig(lr_schedule="linear", schedule_steps=16),
        discriminator_optimizer=OptimizerConfig(lr_schedule="cosine", schedule_steps=16),
    )),
    "wgan-gp": Entry(WGANGP, dict(SMALL, latent_dim=6, n_critic=4)),
    # spectral norm's power-iteration vectors are buffers: they resume, and stay identical on every rank
    "wgan": Entry(WGAN, dict(SMALL, latent_dim=6, n_critic=4, discriminator_normalization="spectral")),
    # rounds of 3, 2, 3, 2, ... critic updates (the reference code's boosted rounds, scaled down)
    "wgan-boosted": Entry(WGAN, dict(SMALL, latent_dim=6, n_critic=2, boosted_n_critic=3, boost_first=1, boost_every=2)),
    "fgan": Entry(FGAN, dict(SMALL, latent_dim=6, divergence="jensen_shannon")),
    "lsgan": Entry(LSGAN, dict(SMALL, latent_dim=6)),
    # the views are drawn from the global RNG, which the checkpoint restores
    "clr": Entry(CLR, dict(SMALL, latent_dim=6, code_dim=8, n_critic=2)),
    "ebgan": Entry(EBGAN, dict(SMALL, latent_dim=6, code_dim=8)),
    # ALI's stochastic encoder, stepped with G from one loss
    "bigan-ali": Entry(BiGAN, dict(SMALL, latent_dim=6, joint_hidden=8, stochastic_encoder=True)),
    "vae-gan": Entry(VAEGAN, dict(SMALL, latent_dim=6)),
    "beta-vae": Entry(BetaVAE, dict(SMALL, latent_dim=4), UNIT),
    # the KL weight is still rising at the resume (step 6 of a 10-step warm-up)
    "vae-annealed": Entry(BetaVAE, dict(SMALL, latent_dim=4, beta=1.0, kl_annealing=KLAnnealing("linear", 10)), UNIT),
    "cvae": Entry(CVAE, dict(SMALL, latent_dim=4), UNIT),
    # the spatial broadcast decoder's coordinate grid is a buffer, not a weight: it must not drift or be saved
    "vae-spatial-broadcast": Entry(BetaVAE, dict(SMALL, latent_dim=4, decoder="spatial_broadcast"), UNIT),
    "factor-vae": Entry(FactorVAE, dict(data_shape=(1, 64, 64), width=4, discriminator_hidden=(8,)), UNIT),
    # actor steps after batches 4, 8, 12: the cadence straddles the resume at batch 6
    "latent-constraints": Entry(LatentConstraints, dict(data_shape=(1, 32, 32), latent_dim=4, hidden=(8,), n_critic=4), UNIT),
    "idgan-sc": Entry(IDGANSC, dict(SMALL, code_dim=3, noise_dim=2, contrastive=TINY_CONTRASTIVE), UNIT),
    # the quick start's Q (the frozen distiller) and code_rotation: R is fitted when fit starts and kept as a buffer. The tiny
    # distiller's dims stay under 0.5 nats, so R is the identity here: this entry runs the fit, the buffer and the broadcast
    # through resume and DDP; test_idgan_sc.py checks a real turn.
    "idgan-sc-ica": Entry(IDGANSC, dict(SMALL, info_head="distiller", code_rotation="ica", code_dim=3, noise_dim=2, contrastive=TINY_CONTRASTIVE), UNIT),
    "idgan-sc-prior": Entry(IDGANSC, dict(SMALL, code_source="prior", code_dim=3, noise_dim=2, contrastive=TINY_CONTRASTIVE), UNIT),
    "infogan": Entry(InfoGAN, dict(data_shape=(1, 64, 64)), UNIT),
    # CR switches on mid-run (step 4), so the schedule must resume with the step count
    "infogan-cr": Entry(InfoGANCR, dict(data_shape=(1, 64, 64), cr_start_step=4), UNIT, all_trained_from=4),
    "infogan-sc": Entry(InfoGANSC, dict(data_shape=(1, 64, 64), contrastive=TINY_CONTRASTIVE), UNIT),
}
