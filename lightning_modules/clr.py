"""CLR, "contrastive representation learning" for GANs (seed 000), built as the contrastive-
discriminator GANs build it (ContraD, Jeong & Shin 2021): a WGAN-GP (Gulrajani et al. 2017) whose
critic is an encoder E with a realism head h on its code, D(x) = h(E(x)), trained besides with
SimCLR's NT-Xent loss on E's codes of two augmented views of each real image, and with a decoder
whose reconstruction error regularises E:

    L_D = E_z[D(G(z))] - E_x[D(x)] + λ GP + α NT-Xent(E(t(x)), E(t'(x))) + ε ‖x - Dec(E(x))‖²,
    L_G = -E_z[D(G(z))].

The seed's terms, and what became of each:

- E[log D(z_φ(x))] (realism judged from the code): kept, as the Wasserstein critic h(E(x)) with the
  gradient penalty, λ 10 (the seed's "λ = 10" of its WGAN-GP, whose "-‖x - x̂‖²" regulariser is
  read as the penalty: the seed runs "WGAN-GP").
- Σ_{j≠i} L_c(z_i, z_j) (a contrastive loss between the codes of different images, weight 1):
  kept, as NT-Xent with α 1. As printed it sums a distance over pairs of different images, which
  minimised pulls every code together, the opposite of the seed's stated aim ("codes of different
  images separate"); NT-Xent separates them against positives, the two augmented views of one image
  (augmentations: ``lightning_modules.training.augmentations``). τ 0.1, ContraD's (the seed has none).
- ε‖z_i - ẑ_i‖² (ε 0.001, "the decoder restores the input"): kept, read as the decoder's
  reconstruction error of the image, ε‖x - Dec(E(x))‖², summed over pixels; it trains E and Dec.
- L_dec(ψ) = E_z[log D(z_ψ(G(z)))]: the generator's side, read as WGAN-GP's -D(G(z)) (the
  seed's L_gen = -D(x̂)).
- β‖μ(z_i) - μ(z_j)‖² and γ‖σ(z_i) - σ(z_j)‖² (β 1, γ 10): dropped. The mean and standard
  deviation "of" one code are undefined for a deterministic code; read as the moments of its
  entries, they pull every code to the same two moments, a constraint NT-Xent on normalised codes
  already makes moot and that works against separating codes.
- ‖w(x_i) - w(x_j)‖² (the reconstructions of different images made alike): dropped; minimised, it
  fights the reconstruction term it sits beside.
- λ_div (z_i)² (λ_div 10): dropped. Read as a penalty on the code's squared norm, it constrains
  nothing the rest needs (NT-Xent compares directions; the gradient penalty bounds the critic) and
  at weight 10 shrinks the codes the realism head reads. ContraD has no such term.

Where ContraD differs: its real/fake head sits on a stop-gradient of the representation, trained by
its contrastive losses alone; here the critic is h∘E, as the gradient penalty constrains h∘E, so E
takes the Wasserstein loss too (the seed judges realism from E's code). ContraD also contrasts
fakes (SupCon); the seed contrasts real images only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeFloat, PositiveFloat, PositiveInt
from torch import Tensor, nn

from lightning_modules.base import AdversarialModule, ImageShape
from lightning_modules.losses import (
    gradient_penalty,
    nt_xent_loss,
    squared_reconstruction_error,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from lightning_modules.nets import MLP, ConvDiscriminator, ConvGenerator, image_shape
from lightning_modules.nets.dcgan import Normalization
from lightning_modules.training.augmentations import RandomViews
from lightning_modules.training.contrastive import nearest_neighbour_accuracy
from lightning_modules.training.optim import OptimizerConfig


class ContrastiveCritic(nn.Module):
    """x -> D(x) = h(E(x)) [B, 1]; the parts are ``encoder`` (x -> code [B, code_dim]),
    ``realism_head`` (code -> score) and ``decoder`` (code -> x, tanh), each trained by its terms."""

    def __init__(self, image_size: int, channels: int, width: int, code_dim: int, normalization: Normalization) -> None:
        super().__init__()
        self.encoder = ConvDiscriminator(image_size, channels, width, code_dim, normalization)
        self.realism_head = MLP(code_dim, 1, hidden=[code_dim], activation="leaky_relu")
        self.decoder = ConvGenerator(code_dim, image_size, channels, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.realism_head(self.encoder(x))


class CLR(AdversarialModule):
    """WGAN-GP with a contrastive encoder-decoder critic (see the module docstring). The critic is the
    ``discriminator`` network (the vocabulary of every GAN here), with its parts as attributes.

    Args:
        latent_dim: Size of the noise vector z ~ N(0, I).
        data_shape: Shape of one image: [channels, size, size] with size 28, 32 or 64.
        width: Feature maps of the conv layers next to the image (the encoder, decoder and generator).
        code_dim: Size of E's code, which the realism head, NT-Xent and the decoder take.
        penalty_weight: λ, the gradient penalty's weight (seed and WGAN-GP: 10).
        contrastive_weight: α, NT-Xent's weight (the seed's contrastive sum has weight 1).
        temperature: τ of NT-Xent (ContraD: 0.1).
        reconstruction_weight: ε, the reconstruction error's weight (seed: 0.001).
        crop_scale: The views' crop area as a fraction of the image (ContraD: 0.2-1).
        color_jitter: The views' colour jitter strength (ContraD: 0.4; 0 for none).
        horizontal_flip: Whether views are flipped (off for digits).
        discriminator_normalization: The encoder's normalization (WGAN-GP: layer norm, not batch
            norm, which couples the samples whose gradients the penalty constrains).
        n_critic: Critic updates per generator update (WGAN-GP: 5; the seed names none).
        generator_optimizer: Seed: a constant learning rate of 2e-4 (Adam, WGAN-GP's β (0, 0.9)).
        discriminator_optimizer: The critic's (encoder, realism head and decoder); as the generator's.
    """

    def __init__(
        self,
        latent_dim: PositiveInt = 128,
        data_shape: ImageShape = (3, 64, 64),
        width: PositiveInt = 64,
        code_dim: PositiveInt = 128,
        penalty_weight: NonNegativeFloat = 10.0,
        contrastive_weight: NonNegativeFloat = 1.0,
        temperature: PositiveFloat = 0.1,
        reconstruction_weight: NonNegativeFloat = 0.001,
        crop_scale: tuple[PositiveFloat, PositiveFloat] = (0.2, 1.0),
        color_jitter: NonNegativeFloat = 0.4,
        horizontal_flip: bool = True,
        discriminator_normalization: Normalization = "layer",
        n_critic: PositiveInt = 5,
        generator_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.0, 0.9)),
        discriminator_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.0, 0.9)),
        **kwargs,
    ) -> None:
        super().__init__(n_critic=n_critic, **kwargs)
        channels, size = image_shape(data_shape, type(self).__name__)
        self.latent_dim, self.data_shape = latent_dim, (channels, size, size)
        self.penalty_weight, self.contrastive_weight, self.reconstruction_weight = penalty_weight, contrastive_weight, reconstruction_weight
        self.temperature = temperature
        self.views = RandomViews(size, channels, self.output_range, crop_scale, color_jitter, horizontal_flip)
        self.generator = ConvGenerator(latent_dim, size, channels, width)
        self.discriminator = ContrastiveCritic(size, channels, width, code_dim, discriminator_normalization)
        self.optimized_networks = {"discriminator": discriminator_optimizer, "generator": generator_optimizer}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, _ = batch
        critic = self.discriminator

        with self.optimize("discriminator") as step:
            fake = self.generator(self.sample_latent(len(real)))
            codes = critic.encoder(real)
            wasserstein = wasserstein_critic_loss(critic.realism_head(codes), critic(fake))
            penalty = gradient_penalty(critic, real, fake)
            view_codes = critic.encoder(self.views(real.repeat(2, 1, 1, 1))).chunk(2)  # one pass for both views
            contrastive = nt_xent_loss(*view_codes, self.temperature)
            reconstruction = squared_reconstruction_error(real, critic.decoder(codes))
            step(wasserstein + self.penalty_weight * penalty + self.contrastive_weight * contrastive
                 + self.reconstruction_weight * reconstruction)
        self.log_dict({"train/critic_loss": wasserstein, "train/gradient_penalty": penalty, "train/contrastive_loss": contrastive,
                       "train/reconstruction_error": reconstruction}, prog_bar=True)
        self.log("train/view_accuracy", view_accuracy(*view_codes))

        if self.generator_turn():
            with self.optimize("generator") as step:
                g_loss = wasserstein_generator_loss(critic(self.generator(self.sample_latent(len(real)))))
                step(g_loss)
            self.log("train/g_loss", g_loss, prog_bar=True)

    # ----------------------------------------------------------------------- inference API
    def encode(self, x: Tensor) -> Tensor:
        """E's codes of ``x`` [B, code_dim]."""
        return self.discriminator.encoder(x)

    def reconstruct(self, x: Tensor) -> Tensor:
        """Dec(E(x)), in the data's range."""
        return self.discriminator.decoder(self.encode(x))


def view_accuracy(codes: Tensor, other_view_codes: Tensor) -> Tensor:
    """Share of the 2N views whose most similar other code (cosine) is the other view of its image:
    what NT-Xent trains for (chance 1/(2N - 1))."""
    representations = F.normalize(torch.cat([codes, other_view_codes]).detach(), dim=1)
    return nearest_neighbour_accuracy(representations, torch.arange(len(codes), device=codes.device).repeat(2))
