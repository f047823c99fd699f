"""WGAN (Arjovsky et al. 2017, Algorithm 1): a Wasserstein critic kept Lipschitz by weight clipping."""

from __future__ import annotations

import torch
from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import Tensor, nn

from lightning_modules.base import AdversarialModule
from lightning_modules.losses import wasserstein_critic_loss, wasserstein_generator_loss
from lightning_modules.nets import build_discriminator, build_generator, check_data_shape
from lightning_modules.nets.dcgan import Normalization
from lightning_modules.optim import OptimizerConfig


def clip_weights_(network: nn.Module, clip_value: float) -> None:
    """Algorithm 1, line 7: w ← clip(w, -c, c) for every weight of the critic."""
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.clamp_(-clip_value, clip_value)


class WGAN(AdversarialModule):
    """Wasserstein GAN with weight clipping.

    Args:
        latent_dim: Size of the noise vector z ~ N(0, I).
        data_shape: Shape of one datum: [channels, size, size] (size 28, 32 or 64) or [features].
        width: Feature maps (or hidden units) of the networks.
        clip_value: c, the bound on every critic weight (paper: 0.01).
        n_critic: Critic updates per generator update (paper: 5; its 100 critic updates for the
            first 25 and every 500th generator update are not implemented).
        critic_normalization: The critic's normalization (paper: batch norm, its DCGAN critic;
            "spectral": Miyato et al. 2018).
        generator_optimizer: Paper: RMSprop, lr 5e-5.
        critic_optimizer: Paper: RMSprop, lr 5e-5.
    """

    def __init__(
        self,
        latent_dim: PositiveInt = 100,
        data_shape: tuple[PositiveInt, ...] = (3, 64, 64),
        width: PositiveInt = 64,
        clip_value: PositiveFloat = 0.01,
        n_critic: PositiveInt = 5,
        critic_normalization: Normalization = "batch",
        generator_optimizer: OptimizerConfig = OptimizerConfig(lr=5e-5, algorithm="rmsprop"),
        critic_optimizer: OptimizerConfig = OptimizerConfig(lr=5e-5, algorithm="rmsprop"),
        **kwargs,
    ) -> None:
        super().__init__(n_critic=n_critic, **kwargs)
        self.latent_dim = latent_dim
        self.data_shape = check_data_shape(data_shape)
        self.clip_value = clip_value
        self.generator = build_generator(latent_dim, self.data_shape, width)
        self.critic = build_discriminator(self.data_shape, width, normalization=critic_normalization)
        self.optimized_networks = {"critic": critic_optimizer, "generator": generator_optimizer}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, _ = batch

        with self.optimize("critic") as step:
            fake = self.generator(self.sample_latent(real.shape[0]))
            critic_loss = wasserstein_critic_loss(self.critic(real), self.critic(fake))
            step(critic_loss)
        clip_weights_(self.critic, self.clip_value)
        self.log("train/wasserstein_estimate", -critic_loss, prog_bar=True)

        if self.generator_turn():
            with self.optimize("generator") as step:
                g_loss = wasserstein_generator_loss(self.critic(self.generator(self.sample_latent(real.shape[0]))))
                step(g_loss)
            self.log("train/g_loss", g_loss, prog_bar=True)
