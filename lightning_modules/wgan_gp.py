"""WGAN-GP (Gulrajani et al. 2017, Algorithm 1): Wasserstein critic with a gradient penalty."""

from __future__ import annotations

from jsonargparse.typing import NonNegativeFloat, PositiveInt
from torch import Tensor

from lightning_modules.base import TwoPlayerGAN
from lightning_modules.losses import (
    gradient_penalty,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from lightning_modules.nets.dcgan import Normalization
from lightning_modules.training.optim import OptimizerConfig


class WGANGP(TwoPlayerGAN):
    """Wasserstein GAN with gradient penalty. The paper's critic is the ``discriminator`` network
    (the name every GAN here and most GAN libraries give it); the networks are :class:`TwoPlayerGAN`'s.

    Args:
        latent_dim: Size of the noise vector z ~ N(0, I) (paper: 128).
        penalty_weight: λ, the gradient penalty's weight (paper: 10).
        discriminator_normalization: The critic's normalization (paper: layer norm; not batch norm,
            which couples the samples whose gradients the penalty constrains; "spectral": Miyato et al. 2018).
        n_critic: Critic updates per generator update (paper: 5).
        generator_optimizer: Paper: Adam, lr 1e-4, β (0, 0.9).
        discriminator_optimizer: The critic's. Paper: Adam, lr 1e-4, β (0, 0.9).
    """

    def __init__(
        self,
        latent_dim: PositiveInt = 128,
        penalty_weight: NonNegativeFloat = 10.0,
        discriminator_normalization: Normalization = "layer",
        n_critic: PositiveInt = 5,
        generator_optimizer: OptimizerConfig = OptimizerConfig(lr=1e-4, betas=(0.0, 0.9)),
        discriminator_optimizer: OptimizerConfig = OptimizerConfig(lr=1e-4, betas=(0.0, 0.9)),
        **kwargs,
    ) -> None:
        super().__init__(
            latent_dim=latent_dim, discriminator_normalization=discriminator_normalization, n_critic=n_critic,
            generator_optimizer=generator_optimizer, discriminator_optimizer=discriminator_optimizer, **kwargs,
        )
        self.penalty_weight = penalty_weight

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, _ = batch

        with self.optimize("discriminator") as step:
            fake = self.generator(self.sample_latent(real.shape[0]))
            wasserstein = wasserstein_critic_loss(self.discriminator(real), self.discriminator(fake))
            penalty = gradient_penalty(self.discriminator, real, fake)
            step(wasserstein + self.penalty_weight * penalty)
        self.log_dict({"train/critic_loss": wasserstein, "train/gradient_penalty": penalty}, prog_bar=True)

        if self.generator_turn():
            with self.optimize("generator") as step:
                g_loss = wasserstein_generator_loss(self.discriminator(self.generator(self.sample_latent(real.shape[0]))))
                step(g_loss)
            self.log("train/g_loss", g_loss, prog_bar=True)
