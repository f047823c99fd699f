"""WGAN (Arjovsky et al. 2017, Algorithm 1): a Wasserstein critic kept Lipschitz by weight clipping."""

from __future__ import annotations

import torch
from jsonargparse.typing import NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor, nn

from lightning_modules.base import AdversarialModule
from lightning_modules.losses import wasserstein_critic_loss, wasserstein_generator_loss
from lightning_modules.nets.dcgan import Normalization
from lightning_modules.training.optim import OptimizerConfig


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
        n_critic: Critic updates per generator update (paper: 5).
        boosted_n_critic: Critic updates per generator update in the reference code's boosted
            rounds: the first ``boost_first`` generator updates and every ``boost_every``-th
            (reference: 100, 25, 500), which bring the critic near optimality before G moves and
            now and then after. None: ``n_critic`` throughout, the paper's Algorithm 1.
        boost_first: Generator updates at the start that are boosted.
        boost_every: Every this-many-th generator update is boosted.
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
        boosted_n_critic: PositiveInt | None = None,
        boost_first: NonNegativeInt = 25,
        boost_every: PositiveInt = 500,
        critic_normalization: Normalization = "batch",
        generator_optimizer: OptimizerConfig = OptimizerConfig(lr=5e-5, algorithm="rmsprop"),
        critic_optimizer: OptimizerConfig = OptimizerConfig(lr=5e-5, algorithm="rmsprop"),
        **kwargs,
    ) -> None:
        super().__init__(n_critic=n_critic, **kwargs)
        self.clip_value = clip_value
        self.boosted_n_critic, self.boost_first, self.boost_every = boosted_n_critic, boost_first, boost_every
        self.build_gan(latent_dim, data_shape, width, critic_normalization, generator_optimizer, critic_optimizer, "critic")

    def critic_updates(self, generator_update: int) -> int:
        boosted = generator_update < self.boost_first or generator_update % self.boost_every == 0
        return self.boosted_n_critic if self.boosted_n_critic is not None and boosted else self.n_critic

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
