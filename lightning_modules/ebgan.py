"""EBGAN (Zhao et al. 2017): the discriminator is an auto-encoder whose reconstruction error is an
energy, low on data and pushed above a margin on fakes."""

from __future__ import annotations

from collections.abc import Sequence

from jsonargparse.typing import NonNegativeFloat, PositiveFloat, PositiveInt
from torch import Tensor, nn

from lightning_modules.base import AdversarialModule, DataShape
from lightning_modules.losses import (
    energy_discriminator_loss,
    pulling_away_term,
    reconstruction_energy,
)
from lightning_modules.nets import build_encoder, build_generator, check_data_shape
from lightning_modules.nets.dcgan import Normalization
from lightning_modules.training.optim import OptimizerConfig


class AutoencoderDiscriminator(nn.Module):
    """x -> (energy D(x) = reconstruction error of Dec(Enc(x)) [B], code Enc(x) [B, code_dim]) (§2.3)."""

    def __init__(self, data_shape: Sequence[int], code_dim: int, width: int, normalization: Normalization) -> None:
        super().__init__()
        self.encoder = build_encoder(data_shape, code_dim, width, normalization)
        self.decoder = build_generator(code_dim, data_shape, width)  # tanh for images, identity for vectors

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        code = self.encoder(x)
        return reconstruction_energy(x, self.decoder(code)), code


class EBGAN(AdversarialModule):
    """Energy-based GAN: L_D = D(x) + [m - D(G(z))]^+ (eq. 1), L_G = D(G(z)) + λ_PT f_PT(Enc(G(z))) (eqs. 2, 6).

    Args:
        latent_dim: Size of the noise vector z ~ N(0, I).
        data_shape: Shape of one datum: [channels, size, size] (size 28, 32 or 64) or [features].
        width: Feature maps (or hidden units) of the networks.
        code_dim: Size of the auto-encoder's code.
        margin: m, in the units of the energy here, a per-element mean squared error (the paper's
            margins are for its unnormalised energies and do not carry over).
        pulling_away_weight: λ_PT, the pulling-away term's weight (paper: 0.1; 0 disables it).
        discriminator_normalization: The auto-encoder's normalization ("spectral": Miyato et al. 2018).
        generator_optimizer: Paper: Adam, lr 1e-3, β1 0.5.
        discriminator_optimizer: Paper: Adam, lr 1e-3, β1 0.5.
    """

    def __init__(
        self,
        latent_dim: PositiveInt = 100,
        data_shape: DataShape = (3, 64, 64),
        width: PositiveInt = 64,
        code_dim: PositiveInt = 256,
        margin: PositiveFloat = 1.0,
        pulling_away_weight: NonNegativeFloat = 0.1,
        discriminator_normalization: Normalization = "batch",
        generator_optimizer: OptimizerConfig = OptimizerConfig(lr=1e-3, betas=(0.5, 0.999)),
        discriminator_optimizer: OptimizerConfig = OptimizerConfig(lr=1e-3, betas=(0.5, 0.999)),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.data_shape = check_data_shape(data_shape)
        self.margin = margin
        self.pulling_away_weight = pulling_away_weight
        self.generator = build_generator(latent_dim, self.data_shape, width)
        self.discriminator = AutoencoderDiscriminator(self.data_shape, code_dim, width, discriminator_normalization)
        self.optimized_networks = {"discriminator": discriminator_optimizer, "generator": generator_optimizer}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, _ = batch
        fake = self.generator(self.sample_latent(real.shape[0]))

        with self.optimize("discriminator") as step:
            (real_energy, _), (fake_energy, _) = self.discriminator(real), self.discriminator(fake.detach())
            d_loss = energy_discriminator_loss(real_energy, fake_energy, self.margin)
            step(d_loss)
        self.log_dict(
            {"train/d_loss": d_loss, "train/real_energy": real_energy.mean(), "train/fake_energy": fake_energy.mean()},
            prog_bar=True,
        )

        if self.generator_turn():
            with self.optimize("generator") as step:
                fake_energy, fake_codes = self.discriminator(fake)
                pulling_away = pulling_away_term(fake_codes)
                step(fake_energy.mean() + self.pulling_away_weight * pulling_away)
            self.log_dict({"train/g_energy": fake_energy.mean(), "train/pulling_away": pulling_away}, prog_bar=True)
