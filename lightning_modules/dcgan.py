"""DCGAN (Radford et al. 2016): a conv GAN trained with the non-saturating loss."""

from __future__ import annotations

from typing import Literal

from jsonargparse.typing import PositiveInt
from torch import Tensor

from lightning_modules.base import AdversarialModule
from lightning_modules.losses import discriminator_loss, nonsaturating_generator_loss
from lightning_modules.nets.dcgan import Normalization
from lightning_modules.training.optim import OptimizerConfig


class DCGAN(AdversarialModule):
    """Deep convolutional GAN.

    Args:
        latent_dim: Size of the noise vector z ~ N(0, I).
        image_size: Height and width of the images (28, 32 or 64).
        channels: Image channels.
        width: Feature maps of the conv layers next to the image (doubling away from it).
        discriminator_normalization: D's normalization (paper: batch; "spectral": Miyato et al. 2018).
        generator_optimizer: The generator's optimizer (paper: Adam, lr 2e-4, β1 0.5).
        discriminator_optimizer: The discriminator's optimizer.
    """

    def __init__(
        self,
        latent_dim: PositiveInt = 100,
        image_size: Literal[28, 32, 64] = 64,
        channels: PositiveInt = 3,
        width: PositiveInt = 64,
        discriminator_normalization: Normalization = "batch",
        generator_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.5, 0.999)),
        discriminator_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.5, 0.999)),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.build_gan(
            latent_dim, (channels, image_size, image_size), width, discriminator_normalization,
            generator_optimizer, discriminator_optimizer,
        )

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, _ = batch
        fake = self.generator(self.sample_latent(real.shape[0]))

        with self.optimize("discriminator") as step:
            real_logits, fake_logits = self.discriminator(real), self.discriminator(fake.detach())
            d_loss = discriminator_loss(real_logits, fake_logits)
            step(d_loss)
        self.log_dict(
            {
                "train/d_loss": d_loss,
                "train/d_real": real_logits.detach().sigmoid().mean(),
                "train/d_fake": fake_logits.detach().sigmoid().mean(),
            },
            prog_bar=True,
        )

        if self.generator_turn():
            with self.optimize("generator") as step:
                g_loss = nonsaturating_generator_loss(self.discriminator(fake))
                step(g_loss)
            self.log("train/g_loss", g_loss, prog_bar=True)
