"""LSGAN (Mao et al. 2017): least-squares losses in place of the cross-entropy of the GAN."""

from __future__ import annotations

from jsonargparse.typing import PositiveInt
from torch import Tensor

from lightning_modules.base import TwoPlayerGAN
from lightning_modules.losses import (
    least_squares_discriminator_loss,
    least_squares_generator_loss,
)


class LSGAN(TwoPlayerGAN):
    """Least-squares GAN (eq. 2): D regresses reals to b and fakes to a; G pushes D(G(z)) to c.

    The defaults are the 0-1 coding scheme a=0, b=c=1 (eq. 9), which the paper trains its models
    with; a=-1, b=1, c=0 (eq. 8, b-c=1 and b-a=2) makes G minimise the Pearson χ² divergence
    between data + fakes and 2·fakes.

    The networks and the other settings are :class:`TwoPlayerGAN`'s (the paper trains with the
    DCGAN settings it builds on: Adam, lr 2e-4, β1 0.5).

    Args:
        latent_dim: Size of the noise vector z ~ N(0, I) (paper, scenes: 1024).
        fake_target: a, the value D regresses fakes to.
        real_target: b, the value D regresses real data to.
        generator_target: c, the value G wants D to believe for fakes.
    """

    def __init__(
        self,
        latent_dim: PositiveInt = 1024,
        fake_target: float = 0.0, real_target: float = 1.0, generator_target: float = 1.0,  # (a, b, c): one coding scheme
        **kwargs,
    ) -> None:
        super().__init__(latent_dim=latent_dim, **kwargs)
        self.fake_target, self.real_target, self.generator_target = fake_target, real_target, generator_target

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, _ = batch
        fake = self.generator(self.sample_latent(real.shape[0]))

        with self.optimize("discriminator") as step:
            d_loss = least_squares_discriminator_loss(
                self.discriminator(real), self.discriminator(fake.detach()), self.real_target, self.fake_target
            )
            step(d_loss)
        self.log("train/d_loss", d_loss, prog_bar=True)

        if self.generator_turn():
            with self.optimize("generator") as step:
                g_loss = least_squares_generator_loss(self.discriminator(fake), self.generator_target)
                step(g_loss)
            self.log("train/g_loss", g_loss, prog_bar=True)
