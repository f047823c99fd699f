"""The models of the resume, precision and subcommand suites: one tiny configuration per case,
with the data it trains on."""

from lightning_modules import (
    CVAE, DCGAN, EBGAN, FGAN, IDGANSC, LSGAN, VAEGAN, WGAN,
    WGANGP, BetaVAE, BiGAN, FactorVAE, InfoGAN, InfoGANCR, KLAnnealing, LatentConstraints, OptimizerConfig,
)
from tests.helpers import RandomImages, quiet_trainer

SMALL_GAN = dict(image_size=32, channels=1, width=4, latent_dim=6)
SHAPED_GAN = dict(data_shape=(1, 32, 32), width=4, latent_dim=6)  # models that take data_shape
SIGNED, UNIT = (-1.0, 1.0), (0.0, 1.0)
# model class, its arguments, the data's (image size, value range, number of images): 8 images a batch
CASES = {
    "dcgan-ema": (DCGAN, dict(SMALL_GAN, ema_decay=0.9), (32, SIGNED, 48)),
    "wgan-gp": (WGANGP, dict(SMALL_GAN, n_critic=4), (32, SIGNED, 48)),
    # the schedulers' positions are part of the state (the learning rates are compared too)
    "dcgan-lr-schedules": (
        DCGAN,
        dict(
            SMALL_GAN,
            generator_optimizer=OptimizerConfig(lr_schedule="linear", schedule_steps=16),
            discriminator_optimizer=OptimizerConfig(lr_schedule="cosine", schedule_steps=16),
        ),
        (32, SIGNED, 48),
    ),
    "beta-vae": (BetaVAE, dict(image_size=32, channels=1, width=4, latent_dim=4), (32, UNIT, 48)),
    "idgan-sc-prior": (
        IDGANSC,
        dict(code_source="prior", image_size=32, channels=1, width=4, code_dim=3, noise_dim=2, num_pairs=8, representation_dim=8),
        (32, UNIT, 48),
    ),
    # CR switches on mid-run (step 4), so the schedule must resume with the step count
    "infogan": (InfoGAN, dict(), (64, UNIT, 24)),
    "infogan-cr": (InfoGANCR, dict(cr_start_step=4), (64, UNIT, 24)),
    "factor-vae": (FactorVAE, dict(width=4, discriminator_hidden=(8,)), (64, UNIT, 24)),
    # the KL weight is still rising at the resume (step 6 of a 10-step warm-up)
    "vae-annealed": (BetaVAE, dict(image_size=32, channels=1, width=4, latent_dim=4, beta=1.0, kl_annealing=KLAnnealing("linear", 10)), (32, UNIT, 48)),
    "cvae": (CVAE, dict(image_size=32, channels=1, width=4, latent_dim=4), (32, UNIT, 48)),
    # actor steps after batches 4, 8, 12: the cadence straddles the resume at batch 6
    "latent-constraints": (LatentConstraints, dict(latent_dim=4, image_size=32, channels=1, hidden=(8,), n_critic=4), (32, UNIT, 48)),
    "bigan-ali": (BiGAN, dict(SHAPED_GAN, joint_hidden=8, stochastic_encoder=True), (32, SIGNED, 48)),
    "vae-gan": (VAEGAN, SHAPED_GAN, (32, SIGNED, 48)),
    "fgan": (FGAN, dict(SHAPED_GAN, divergence="jensen_shannon"), (32, SIGNED, 48)),
    "lsgan": (LSGAN, SHAPED_GAN, (32, SIGNED, 48)),
    "ebgan": (EBGAN, dict(SHAPED_GAN, code_dim=8), (32, SIGNED, 48)),
    "wgan": (WGAN, dict(SHAPED_GAN, n_critic=4), (32, SIGNED, 48)),
    # rounds of 3, 2, 3, 2, ... critic updates (the reference code's boosted rounds, scaled down)
    "wgan-boosted": (WGAN, dict(SHAPED_GAN, n_critic=2, boosted_n_critic=3, boost_first=1, boost_every=2), (32, SIGNED, 48)),
}


def tiny_vae_checkpoint(directory) -> str:
    """The frozen VAE of the latent-constraints case, after one training step."""
    path = directory / "vae.ckpt"
    if not path.exists():
        trainer = quiet_trainer(max_steps=1)
        trainer.fit(BetaVAE(image_size=32, channels=1, width=4, latent_dim=4), RandomImages(size=32, value_range=UNIT))
        trainer.save_checkpoint(path)
    return str(path)
