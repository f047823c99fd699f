"""β-VAE (Higgins et al. 2017): IDGAN-SC's stage-one distiller (seed 001, eq. 1).

    L = E_q(z|x)[log p(x|z)] - β KL(q(z|x) || N(0, I)),   maximised (we minimise its negation).

With β = 1 it is the plain VAE (Kingma & Welling 2014; seed 003); ``kl_annealing`` scales β by a
schedule of the training step (configs/vae_*.yaml warm it up linearly).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import Tensor

from lightning_modules.base import GenerativeModule, ImageShape
from lightning_modules.losses import (
    bernoulli_nll,
    gaussian_nll,
    kl_per_dimension,
    kl_to_standard_normal,
)
from lightning_modules.nets import (
    ConvEncoder,
    ConvGenerator,
    SpatialBroadcastDecoder,
    image_shape,
)
from lightning_modules.training.annealing import KLAnnealing
from lightning_modules.training.latents import gaussian_posterior, reparameterize
from lightning_modules.training.optim import OptimizerConfig


class BetaVAE(GenerativeModule):
    """β-VAE with a DCGAN-style conv encoder and decoder; data in [0, 1].

    Args:
        latent_dim: Size of the code (IDGAN-SC: 10 on dSprites, 20 on CelebA).
        beta: Weight β of the KL term (paper: 8 on dSprites, 6 on CelebA); 1 is the plain VAE.
        likelihood: "bernoulli" for binary data (dSprites, MNIST), "gaussian" (fixed σ) otherwise.
        decoder_std: σ of the Gaussian decoder; √0.5 makes -log p(x|z) the summed squared error
            plus a constant.
        data_shape: Shape of one image: [channels, size, size] with size 28, 32 or 64.
        width: Feature maps of the conv layers next to the image.
        optimizer: Encoder and decoder optimizer (paper: Adam, lr 2e-4).
        kl_annealing: Schedule of the KL weight: β times its factor at each step (logged as
            ``train/kl_weight``). Constant by default.
        decoder: "dcgan" (transposed convolutions, the paper's) or "spatial_broadcast" (Watters
            et al. 2019: the code tiled over the image with x/y coordinate channels, four 3x3
            convolutions of ``width`` maps), which learns axis-aligned position latents on
            dSprites within a few thousand steps where "dcgan" mixes x and y.
        broadcast_layers: The spatial broadcast decoder's hidden convolutions (the paper: 4).
        broadcast_padding: The spatial broadcast decoder's padding: "valid" (the paper) or "same"
            (a grid of the image's size; the quick start's 3 same-padded layers cost ~0.6x the
            paper's 4 valid ones at 32 px).
    """

    step_network = "decoder"
    sampling_network = "decoder"
    output_range = (0.0, 1.0)
    #: Width of a label vector y the networks also take (the encoder as constant image channels,
    #: the decoder beside z): none here; a conditional VAE's labels.
    label_dim: int = 0

    def __init__(
        self,
        latent_dim: PositiveInt = 10,
        beta: PositiveFloat = 8.0,
        likelihood: Literal["bernoulli", "gaussian"] = "bernoulli",
        decoder_std: PositiveFloat = math.sqrt(0.5),
        data_shape: ImageShape = (1, 64, 64),
        width: PositiveInt = 32,
        optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.9, 0.999)),
        kl_annealing: KLAnnealing = KLAnnealing(),
        decoder: Literal["dcgan", "spatial_broadcast"] = "dcgan",
        broadcast_layers: PositiveInt = 4,
        broadcast_padding: Literal["valid", "same"] = "valid",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.latent_dim, self.beta, self.kl_annealing, self.likelihood = latent_dim, beta, kl_annealing, likelihood
        self.decoder_log_var = 2 * math.log(decoder_std)
        channels, size = image_shape(data_shape, type(self).__name__)
        self.data_shape = (channels, size, size)
        self.encoder = ConvEncoder(size, channels + self.label_dim, width, out_features=2 * latent_dim)
        if decoder == "spatial_broadcast":
            self.decoder = SpatialBroadcastDecoder(
                latent_dim + self.label_dim, size, channels, width, broadcast_layers, broadcast_padding
            )
        else:
            self.decoder = ConvGenerator(latent_dim + self.label_dim, size, channels, width, activation="identity")
        self.optimized_networks = {"encoder": optimizer, "decoder": optimizer}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        kl_weight = self.kl_weight()
        with self.optimize("encoder", "decoder") as step:
            reconstruction, kl = self.negative_elbo_terms(x, y)
            step(reconstruction + kl_weight * kl)
        self.log_dict(
            {"train/reconstruction_nll": reconstruction, "train/kl": kl, "train/elbo": -(reconstruction + kl)},
            prog_bar=True,
        )
        self.log("train/kl_weight", kl_weight)

    def negative_elbo_terms(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """-E_q(z|x)[log p(x|z)] (one reparameterised z per image) and KL(q(z|x) || N(0, I)),
        averaged over the batch; the labels y are unused (the VAE is unconditional)."""
        mean, log_var = gaussian_posterior(self.encoder, x)
        return self.reconstruction_nll(self.decoder(reparameterize(mean, log_var)), x), kl_to_standard_normal(mean, log_var)

    def kl_weight(self) -> float:
        """β times the annealing factor at ``global_step`` (the VAE updates made before this one)."""
        return self.beta * self.kl_annealing.factor(self.global_step)

    def reconstruction_nll(self, decoded: Tensor, x: Tensor) -> Tensor:
        """-log p(x|z) per image: Bernoulli on logits, or Gaussian with fixed σ around the mean."""
        if self.likelihood == "bernoulli":
            return bernoulli_nll(decoded, x)
        log_var = torch.full_like(decoded, self.decoder_log_var).flatten(1)
        return gaussian_nll(x.flatten(1), decoded.flatten(1), log_var)

    def held_out_scores(self, batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Also the negative ELBO with β = 1, an upper bound on -log p(x) in nats per image (one
        reparameterised z per image; whatever β trained the model), and its two terms."""
        reconstruction, kl = self.negative_elbo_terms(*batch)
        return {"negative_elbo": reconstruction + kl, "reconstruction_nll": reconstruction, "kl": kl,
                **super().held_out_scores(batch)}

    # ----------------------------------------------------------------------- inference API
    def generate(self, latent: Tensor) -> Tensor:
        """Images in [0, 1]: the Bernoulli means, or the Gaussian means clipped to the data range."""
        decoded = super().generate(latent)
        return decoded.sigmoid() if self.likelihood == "bernoulli" else decoded.clamp(0.0, 1.0)

    def encode(self, x: Tensor, sample: bool = False) -> Tensor:
        """Codes of ``x``: the posterior mean (for metrics), or a reparameterised sample (for stage two)."""
        mean, log_var = gaussian_posterior(self.encoder, x)
        return reparameterize(mean, log_var) if sample else mean

    def reconstruct(self, x: Tensor) -> Tensor:
        """The decoder's output at the posterior mean of images ``x`` [B, C, H, W] (same shape, in ``output_range``)."""
        return self.generate(self.encode(x))

    def code_kl(self, x: Tensor) -> Tensor:
        """KL(q(z_j|x) || N(0, 1)) of each code dimension j in nats, averaged over ``x``: what each
        dimension carries (about 0 for one collapsed to the prior)."""
        return kl_per_dimension(*gaussian_posterior(self.encoder, x))
