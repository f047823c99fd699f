"""InfoGAN (Chen et al. 2016) and InfoGAN-CR (Lin et al., ICML 2020; seed 001 eq. 2).

    InfoGAN:     min_{G,Q} max_D  L_adv(D, G) - λ L_info(G, Q)
    InfoGAN-CR:  min_{G,Q,H} max_D  L_adv(D, G) - λ L_info(G, Q) - α I(x1, x2; k)

G(c, z) takes codes c and noise z, all U[-1, 1]. D and Q share a spectrally normalised trunk; Q
is a Gaussian over c. InfoGAN-CR's CR discriminator H sees a pair of images (channel-concatenated)
built from one code dimension k and predicts k; G cooperates with H (both minimise the softmax
cross-entropy, which bounds -I(x1, x2; k)). The dSprites setup is the reference code's
(github.com/fjxmlzn/InfoGAN-CR): 5 codes + 5 noise dims, nets of its appendix, λ = 0.05, Adam
β1 0.5 with lr G 1e-3, D/Q and H 2e-3, batch 64, α = 0 for the first 288,000 iterations, then 2.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from jsonargparse.typing import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from lightning_modules.base import AdversarialModule
from lightning_modules.latents import gaussian_posterior, pairs_differing_in, pairs_sharing, uniform_pairs_apart
from lightning_modules.losses import (
    contrastive_regularization_loss,
    discriminator_loss,
    gaussian_nll,
    nonsaturating_generator_loss,
)
from lightning_modules.nets import InfoGANCRGenerator, InfoGANCRTrunk
from lightning_modules.optim import OptimizerConfig


class InfoGANDiscriminator(nn.Module):
    """The shared D/Q network: InfoGAN-CR's trunk, a real/fake logit head (D) and a Gaussian head
    over the codes (Q), both spectrally normalised like the trunk.

    Args:
        channels: Image channels.
        code_dim: Size of the code c that Q infers.
        info_std: A fixed σ for Q's Gaussian (the reference code: 1.0); ``None`` learns a
            log-variance per code dimension.
    """

    def __init__(self, channels: int, code_dim: int, info_std: float | None = None) -> None:
        super().__init__()
        self.trunk = InfoGANCRTrunk(channels)
        self.head = spectral_norm(nn.Linear(self.trunk.feature_dim, 1))
        self.info_head = spectral_norm(nn.Linear(self.trunk.feature_dim, code_dim if info_std else 2 * code_dim))
        self.info_log_var = None if info_std is None else 2 * math.log(info_std)

    def forward(self, images: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """D's logits [B] and Q's (mean, log-variance) [B, code_dim] of ``images``."""
        features = self.trunk(images)
        return self.head(features).squeeze(1), self.q_posterior(features)

    def q_posterior(self, features: Tensor) -> tuple[Tensor, Tensor]:
        if self.info_log_var is None:
            return gaussian_posterior(self.info_head, features)
        mean = self.info_head(features)
        return mean, torch.full_like(mean, self.info_log_var)


class InfoGAN(AdversarialModule):
    """InfoGAN with continuous U[-1, 1] codes, on InfoGAN-CR's dSprites networks (64x64, [0, 1]).

    Args:
        code_dim: Size of the code c (the reference: 5).
        noise_dim: Size of the noise z (the reference: 5).
        channels: Image channels.
        info_weight: λ, on Q's Gaussian negative log-likelihood in both the D/Q and the G loss (0.05).
        info_std: Fix Q's σ (the reference code: 1.0, so its info loss is a squared error); the
            default ``None`` learns Q's log-variance (InfoGAN's factored Gaussian).
        generator_optimizer: The reference: Adam, lr 1e-3, β1 0.5.
        discriminator_optimizer: D and Q (one network). The reference: Adam, lr 2e-3, β1 0.5.
    """

    output_range = (0.0, 1.0)
    traversal_span = 1.0  # the codes' prior is U[-1, 1]

    def __init__(
        self,
        code_dim: PositiveInt = 5,
        noise_dim: PositiveInt = 5,
        channels: PositiveInt = 1,
        info_weight: NonNegativeFloat = 0.05,
        info_std: PositiveFloat | None = None,
        generator_optimizer: OptimizerConfig = OptimizerConfig(lr=1e-3, betas=(0.5, 0.999)),
        discriminator_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-3, betas=(0.5, 0.999)),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.code_dim, self.noise_dim, self.latent_dim = code_dim, noise_dim, code_dim + noise_dim
        self.info_weight = info_weight
        self.data_shape = (channels, 64, 64)
        self.generator = InfoGANCRGenerator(self.latent_dim, channels, activation="sigmoid")
        self.discriminator = InfoGANDiscriminator(channels, code_dim, info_std)
        self.optimized_networks = {"discriminator": discriminator_optimizer, "generator": generator_optimizer}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, _ = batch
        latent = self.sample_latent(len(real))
        codes = latent[:, : self.code_dim]
        fake = self.generator(latent)

        with self.optimize("discriminator") as step:  # D and Q
            real_logits, _ = self.discriminator(real)
            fake_logits, q_fake = self.discriminator(fake.detach())
            info_nll = gaussian_nll(codes, *q_fake)  # -L_info without the constant H(c)
            d_loss = discriminator_loss(real_logits, fake_logits) + self.info_weight * info_nll
            step(d_loss)
        self.log_dict(
            {
                "train/d_loss": d_loss,
                "train/d_real": real_logits.detach().sigmoid().mean(),
                "train/d_fake": fake_logits.detach().sigmoid().mean(),
                "train/info_nll": info_nll,
                "train/code_recovery_mse": (q_fake[0].detach() - codes).pow(2).mean(),
            },
            prog_bar=True,
        )

        if self.generator_turn():
            with self.optimize("generator", *self.cooperating_networks()) as step:
                fake_logits, q_fake = self.discriminator(fake)
                g_loss = nonsaturating_generator_loss(fake_logits) + self.info_weight * gaussian_nll(codes, *q_fake)
                step(g_loss + self.regularization_loss(len(real)))
            self.log("train/g_loss", g_loss, prog_bar=True)

    def cooperating_networks(self) -> tuple[str, ...]:
        """Networks that minimise the generator's loss with it (none in InfoGAN)."""
        return ()

    def regularization_loss(self, n: int) -> Tensor | float:
        """A term added to the generator's loss (none in InfoGAN)."""
        return 0.0

    # ------------------------------------------------------------------------ sampling API
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(c, z), every dimension U[-1, 1]: the codes first, then the noise."""
        return torch.rand(n, self.latent_dim, generator=generator, device=self._generator_device(generator)) * 2 - 1

    def traversal_dims(self) -> range:
        return range(self.code_dim)

    def encode(self, x: Tensor) -> Tensor:
        """Q's mean code of real images (the representation disentanglement metrics score)."""
        return self.discriminator(x)[1][0]


class InfoGANCR(InfoGAN):
    """InfoGAN with contrastive regularization: a CR discriminator H on image pairs.

    Args:
        pairing: How a pair labelled k is built (the noise z is always shared).
            "share" (the InfoGAN-CR reference code): code k is identical in both, every other
            code drawn independently, at least ``gap`` apart; "differ" (IDGAN-SC's text): one
            code vector, code k drawn twice (at least ``gap`` apart), the others identical.
        gap: Minimum distance between the two values of each code that differs within a pair
            (the reference's dSprites setting: 0).
        cr_weight: α once CR is on (the reference: 2.0).
        cr_start_step: Generator steps trained as plain InfoGAN before CR starts (the reference:
            288,000 of its 322,560). Before that H is neither used nor trained: the reference does
            train it, but re-initialises it (and its optimizer) when CR starts.
        cr_optimizer: The CR discriminator. The reference: Adam, lr 2e-3, β1 0.5.
    """

    def __init__(
        self,
        pairing: Literal["share", "differ"] = "share",
        gap: NonNegativeFloat = 0.0,
        cr_weight: NonNegativeFloat = 2.0,
        cr_start_step: NonNegativeInt = 288_000,
        cr_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-3, betas=(0.5, 0.999)),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if gap > 2.0:
            raise ValueError(f"gap must lie in [0, 2] (codes are U[-1, 1]), got {gap}")
        self.pairing, self.gap, self.cr_weight, self.cr_start_step = pairing, gap, cr_weight, cr_start_step
        channels = self.data_shape[0]
        trunk = InfoGANCRTrunk(2 * channels)
        self.cr_discriminator = nn.Sequential(trunk, spectral_norm(nn.Linear(trunk.feature_dim, self.code_dim)))
        self.optimized_networks["cr_discriminator"] = cr_optimizer

    def current_cr_weight(self) -> float:
        """α of this step: 0 until ``cr_start_step`` generator steps are done, then ``cr_weight``."""
        return self.cr_weight if self.global_step >= self.cr_start_step else 0.0

    def cooperating_networks(self) -> tuple[str, ...]:
        return ("cr_discriminator",) if self.current_cr_weight() > 0 else ()

    def regularization_loss(self, n: int) -> Tensor | float:
        """α times the CR cross-entropy of ``n`` fresh pairs; H minimises it with G."""
        weight = self.current_cr_weight()
        self.log("train/cr_weight", weight)
        if weight == 0:
            return 0.0
        dims, latent_1, latent_2 = self.cr_latent_pairs(n)
        logits = self.cr_discriminator(torch.cat([self.generator(latent_1), self.generator(latent_2)], 1))
        cr_loss = contrastive_regularization_loss(logits, dims)
        self.log_dict(
            {"train/cr_loss": cr_loss, "train/cr_accuracy": (logits.detach().argmax(1) == dims).float().mean()},
            prog_bar=True,
        )
        return weight * cr_loss

    def cr_latent_pairs(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """``n`` pairs of latents (c, z) labelled by a code dimension k ~ U{0..code_dim-1}: returns
        k [n] and the two latents [n, latent_dim] of each pair, built by ``pairing``."""
        device = self.device
        dims = torch.randint(self.code_dim, (n,), device=device)
        if self.pairing == "share":
            code_1, code_2 = pairs_sharing(*uniform_pairs_apart((n, self.code_dim), self.gap, device=device), dims)
        else:
            base = torch.rand(n, self.code_dim, device=device) * 2 - 1
            code_1, code_2 = pairs_differing_in(base, *uniform_pairs_apart((n,), self.gap, device=device), dims)
        noise = torch.rand(n, self.noise_dim, device=device) * 2 - 1
        return dims, torch.cat([code_1, noise], 1), torch.cat([code_2, noise], 1)
