"""WGAN-GP (Gulrajani et al. 2017, Algorithm 1): Wasserstein critic with a gradient penalty."""

from __future__ import annotations

from typing import Literal

from jsonargparse.typing import NonNegativeFloat, PositiveInt
from torch import Tensor

from lightning_modules.base import AdversarialModule
from lightning_modules.losses import gradient_penalty, wasserstein_critic_loss, wasserstein_generator_loss
from lightning_modules.nets.dcgan import Normalization
from lightning_modules.training.optim import OptimizerConfig


class WGANGP(AdversarialModule):
    """Wasserstein GAN with gradient penalty.

    Args:
        latent_dim: Size of the noise vector z ~ N(0, I).
        image_size: Height and width of the images (28, 32 or 64).
        channels: Image channels.
        width: Feature maps of the conv layers next to the image.
        penalty_weight: λ, the gradient penalty's weight (paper: 10).
        critic_normalization: The critic's normalization (paper: layer norm; not batch norm, which
            couples the samples whose gradients the penalty constrains; "spectral": Miyato et al. 2018).
        n_critic: Critic updates per generator update (paper: 5).
        generator_optimizer: Paper: Adam, lr 1e-4, β (0, 0.9).
        critic_optimizer: Paper: Adam, lr 1e-4, β (0, 0.9).
    """

    def __init__(
        self,
        latent_dim: PositiveInt = 128,
        image_size: Literal[28, 32, 64] = 64,
        channels: PositiveInt = 3,
        width: PositiveInt = 64,
        penalty_weight: NonNegativeFloat = 10.0,
        critic_normalization: Normalization = "layer",
        n_critic: PositiveInt = 5,
        generator_optimizer: OptimizerConfig = OptimizerConfig(lr=1e-4, betas=(0.0, 0.9)),
        critic_optimizer: OptimizerConfig = OptimizerConfig(lr=1e-4, betas=(0.0, 0.9)),
        **kwargs,
    ) -> None:
        super().__init__(n_critic=n_critic, **kwargs)
        self.penalty_weight = penalty_weight
        self.build_gan(
            latent_dim, (channels, image_size, image_size), width, critic_normalization,
            generator_optimizer, critic_optimizer, "critic",
        )

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, _ = batch

        with self.optimize("critic") as step:
            fake = self.generator(self.sample_latent(real.shape[0]))
            wasserstein = wasserstein_critic_loss(self.critic(real), self.critic(fake))
            penalty = gradient_penalty(self.critic, real, fake)
            step(wasserstein + self.penalty_weight * penalty)
        self.log_dict({"train/critic_loss": wasserstein, "train/gradient_penalty": penalty}, prog_bar=True)

        if self.generator_turn():
            with self.optimize("generator") as step:
                g_loss = wasserstein_generator_loss(self.critic(self.generator(self.sample_latent(real.shape[0]))))
                step(g_loss)
            self.log("train/g_loss", g_loss, prog_bar=True)
