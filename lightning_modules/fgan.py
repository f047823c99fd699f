"""f-GAN (Nowozin et al. 2016): a generator trained by variational divergence minimisation,
with any f-divergence of the paper's Table 2."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from lightning_modules.base import TwoPlayerGAN
from lightning_modules.losses import (
    fgan_minimax_generator_loss,
    fgan_practical_generator_loss,
    fgan_variational_bound,
)
from lightning_modules.losses.divergences import DIVERGENCES, Divergence

GENERATOR_LOSSES = {"practical": fgan_practical_generator_loss, "minimax": fgan_minimax_generator_loss}


class FGAN(TwoPlayerGAN):
    """f-GAN: the critic V maximises the bound F = E_data[g_f(V(x))] - E_G[f*(g_f(V(x)))] on D_f(data‖G).

    Only Jensen-Shannon, GAN, squared Hellinger and total variation stay finite while data and fakes
    barely overlap; the others' bounds grow without limit as the critic separates them. On the 2-D
    ring with toy settings (tests/test_fgan.py), KL and Pearson χ² collapsed to one mode, Neyman χ²
    and total variation diverged within 1000 steps (Neyman χ² reached NaN while f*(g_f(v)) was
    computed in two rounded steps; see ``divergences``).

    The networks and the other settings are :class:`TwoPlayerGAN`'s (the paper's: Adam, lr 2e-4, β1 0.5);
    its discriminator is the paper's critic V.

    Args:
        divergence: The f-divergence: kl, reverse_kl, pearson, neyman, squared_hellinger,
            jensen_shannon, gan or total_variation (Table 2's rows).
        generator_objective: "practical" maximises E_G[g_f(V(x))] (the paper's §3.2 trick, which it
            found useful for all divergences); "minimax" minimises F itself (Algorithm 1).
    """

    def __init__(
        self,
        divergence: Divergence = "gan",
        generator_objective: Literal["practical", "minimax"] = "practical",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.divergence = DIVERGENCES[divergence]
        self.generator_loss = GENERATOR_LOSSES[generator_objective]

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
