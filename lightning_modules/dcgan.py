"""DCGAN (Radford et al. 2016): a conv GAN trained with the non-saturating loss."""

from __future__ import annotations

from torch import Tensor

from lightning_modules.base import TwoPlayerGAN
from lightning_modules.losses import discriminator_loss, nonsaturating_generator_loss


class DCGAN(TwoPlayerGAN):
    """Deep convolutional GAN: D minimises the cross-entropy of telling data from G(z), G the
    non-saturating -log D(G(z)).

    The networks and settings are :class:`TwoPlayerGAN`'s, whose defaults are this paper's (z of 100,
    batch norm, Adam lr 2e-4, β1 0.5 for both networks).
    """

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, _ = batch
        fake = self.generator(self.sample_latent(real.shape[0]))

        with self.optimize("discriminator") as step:
            real_logits, fake_logits = self.discriminator(real), self.discriminator(fake.detach())
            d_loss = discriminator_loss(real_logits, fake_logits)
            step(d_loss)
        self.log_discriminator(d_loss, real_logits, fake_logits)

        if self.generator_turn():
            with self.optimize("generator") as step:
                g_loss = nonsaturating_generator_loss(self.discriminator(fake))
                step(g_loss)
            self.log("train/g_loss", g_loss, prog_bar=True)
