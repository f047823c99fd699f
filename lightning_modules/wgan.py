"""WGAN (Arjovsky et al. 2017, Algorithm 1): a Wasserstein critic kept Lipschitz by weight clipping."""

from __future__ import annotations

import torch
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor, nn

from lightning_modules.base import TwoPlayerGAN
from lightning_modules.losses import wasserstein_critic_loss, wasserstein_generator_loss
from lightning_modules.training.optim import OptimizerConfig


def clip_weights_(network: nn.Module, clip_value: float) -> None:
    """Algorithm 1, line 7: w ← clip(w, -c, c) for every weight of the critic."""
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.clamp_(-clip_value, clip_value)


class WGAN(TwoPlayerGAN):
    """Wasserstein GAN with weight clipping. The paper's critic is the ``discriminator`` network
    (the name every GAN here and most GAN libraries give it); the networks are :class:`TwoPlayerGAN`'s.

    Args:
        clip_value: c, the bound on every critic weight (paper: 0.01).
        n_critic: Critic updates per generator update (paper: 5).
        boosted_n_critic: Critic updates per generator update in the reference code's boosted
            rounds: the first ``boost_first`` generator updates and every ``boost_every``-th
            (reference: 100, 25, 500), which bring the critic near optimality before G moves and
            now and then after. None: ``n_critic`` throughout, the paper's Algorithm 1.
        boost_first: Generator updates at the start that are boosted.
        boost_every: Every this-many-th generator update is boosted.
        generator_optimizer: Paper: RMSprop, lr 5e-5.
        discriminator_optimizer: The critic's. Paper: RMSprop, lr 5e-5 (its normalization, as
            DCGAN's, batch norm: the default ``discriminator_normalization``).
    """

    def __init__(
        self,
        clip_value: PositiveFloat = 0.01,
        n_critic: PositiveInt = 5,
        boosted_n_critic: PositiveInt | None = None,
        boost_first: NonNegativeInt = 25,
        boost_every: PositiveInt = 500,
        generator_optimizer: OptimizerConfig = OptimizerConfig(lr=5e-5, algorithm="rmsprop"),
        discriminator_optimizer: OptimizerConfig = OptimizerConfig(lr=5e-5, algorithm="rmsprop"),
        **kwargs,
    ) -> None:
        super().__init__(
            n_critic=n_critic, generator_optimizer=generator_optimizer, discriminator_optimizer=discriminator_optimizer, **kwargs
        )
        self.clip_value = clip_value
        self.boosted_n_critic, self.boost_first, self.boost_every = boosted_n_critic, boost_first, boost_every

    def critic_updates(self, generator_update: int) -> int:
        boosted = generator_update < self.boost_first or generator_update % self.boost_every == 0
        return self.boosted_n_critic if self.boosted_n_critic is not None and boosted else self.n_critic

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, _ = batch

        with self.optimize("discriminator") as step:
            fake = self.generator(self.sample_latent(real.shape[0]))
            critic_loss = wasserstein_critic_loss(self.discriminator(real), self.discriminator(fake))
            step(critic_loss)
        clip_weights_(self.discriminator, self.clip_value)
        self.log("train/wasserstein_estimate", -critic_loss, prog_bar=True)

        if self.generator_turn():
            with self.optimize("generator") as step:
                g_loss = wasserstein_generator_loss(self.discriminator(self.generator(self.sample_latent(real.shape[0]))))
                step(g_loss)
            self.log("train/g_loss", g_loss, prog_bar=True)
