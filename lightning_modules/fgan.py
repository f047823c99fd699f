"""f-GAN (Nowozin et al. 2016): a generator trained by variational divergence minimisation,
with any f-divergence of the paper's Table 2."""

from __future__ import annotations

from typing import Literal

from jsonargparse.typing import PositiveInt
from torch import Tensor

from lightning_modules.base import AdversarialModule
from lightning_modules.losses import fgan_minimax_generator_loss, fgan_practical_generator_loss, fgan_variational_bound
from lightning_modules.losses.divergences import DIVERGENCES, Divergence
from lightning_modules.nets.dcgan import Normalization
from lightning_modules.training.optim import OptimizerConfig

GENERATOR_LOSSES = {"practical": fgan_practical_generator_loss, "minimax": fgan_minimax_generator_loss}


class FGAN(AdversarialModule):
    """f-GAN: the critic V maximises the bound F = E_data[g_f(V(x))] - E_G[f*(g_f(V(x)))] on D_f(data‖G).

    Only Jensen-Shannon, GAN, squared Hellinger and total variation stay finite while data and fakes
    barely overlap; the others' bounds grow without limit as the critic separates them. On the 2-D
    ring with toy settings (tests/test_fgan.py), KL and Pearson χ² collapsed to one mode, Neyman χ²
    and total variation diverged within 1000 steps (Neyman χ² reached NaN while f*(g_f(v)) was
    computed in two rounded steps; see ``divergences``).

    Args:
        latent_dim: Size of the noise vector z ~ N(0, I).
        data_shape: Shape of one datum: [channels, size, size] (size 28, 32 or 64) or [features].
        width: Feature maps (or hidden units) of the networks.
        divergence: The f-divergence: kl, reverse_kl, pearson, neyman, squared_hellinger,
            jensen_shannon, gan or total_variation (Table 2's rows).
        generator_objective: "practical" maximises E_G[g_f(V(x))] (the paper's §3.2 trick, which it
            found useful for all divergences); "minimax" minimises F itself (Algorithm 1).
        discriminator_normalization: The critic's normalization ("spectral": Miyato et al. 2018).
        generator_optimizer: Paper: Adam, lr 2e-4, β1 0.5.
        discriminator_optimizer: Paper: Adam, lr 2e-4, β1 0.5.
    """

    def __init__(
        self,
        latent_dim: PositiveInt = 100,
        data_shape: tuple[PositiveInt, ...] = (3, 64, 64),
        width: PositiveInt = 64,
        divergence: Divergence = "gan",
        generator_objective: Literal["practical", "minimax"] = "practical",
        discriminator_normalization: Normalization = "batch",
        generator_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.5, 0.999)),
        discriminator_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.5, 0.999)),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.divergence = DIVERGENCES[divergence]
        self.generator_loss = GENERATOR_LOSSES[generator_objective]
        self.build_gan(latent_dim, data_shape, width, discriminator_normalization, generator_optimizer, discriminator_optimizer)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, _ = batch
        fake = self.generator(self.sample_latent(real.shape[0]))

        with self.optimize("discriminator") as step:
            bound = fgan_variational_bound(self.discriminator(real), self.discriminator(fake.detach()), self.divergence)
            step(-bound)
        self.log("train/divergence_estimate", bound, prog_bar=True)

        if self.generator_turn():
            with self.optimize("generator") as step:
                g_loss = self.generator_loss(self.discriminator(fake), self.divergence)
                step(g_loss)
            self.log("train/g_loss", g_loss, prog_bar=True)
