"""VAE-GAN (Larsen et al. 2016): a VAE whose reconstruction error is measured by a GAN's discriminator.

Enc maps x to q(z|x), Dec (the GAN's generator) maps codes to data, and Dis tells data from the
reconstructions x̃ = Dec(z), z ~ q(z|x), and from the samples x_p = Dec(z_p), z_p ~ N(0, I). The
element-wise reconstruction error is replaced by L_llike^Dis_l, the Gaussian log-likelihood of
Dis's l-th layer features (here its last hidden layer, as the paper's last conv layer).
Algorithm 1 gives each network its own loss:

    Enc:  L_prior + L_llike^Dis_l        (L_prior = KL(q(z|x) || N(0, I)))
    Dec:  γ L_llike^Dis_l - L_GAN
    Dis:  L_GAN, maximised               (L_GAN = log Dis(x) + log(1 - Dis(x̃)) + log(1 - Dis(x_p)))

no GAN gradient reaches Enc and no reconstruction gradient reaches Dis. For Dec's "-L_GAN" we use
the non-saturating form -log Dis(x̃) - log Dis(x_p) (Goodfellow et al.'s heuristic, as every GAN
here), which has the same fixed point.
"""

from __future__ import annotations

import torch
from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import Tensor

from lightning_modules.base import DataShape, GenerativeModule
from lightning_modules.losses import (
    feature_reconstruction_nll,
    kl_to_standard_normal,
    nonsaturating_generator_loss,
    vae_gan_discriminator_loss,
)
from lightning_modules.nets import (
    build_discriminator,
    build_encoder,
    build_generator,
    check_data_shape,
)
from lightning_modules.nets.dcgan import Normalization
from lightning_modules.training.latents import (
    gaussian_code,
    gaussian_posterior,
    reparameterize,
)
from lightning_modules.training.optim import OptimizerConfig

# The paper: RMSProp, lr 3e-4, for all three networks.
RMSPROP = OptimizerConfig(lr=3e-4, algorithm="rmsprop")


class VAEGAN(GenerativeModule):
    """VAE-GAN on images (DCGAN-style conv nets) or vectors (MLPs), chosen by ``data_shape``.

    Args:
        latent_dim: Size of the code z (the paper's reference code: 128 on CelebA).
        data_shape: Shape of one datum: [channels, size, size] with size 28, 32 or 64, or [features].
        gamma: γ, the weight of the feature-space reconstruction against the GAN loss in Dec's
            loss. The paper leaves its value open; its reference code's CelebA run weights Dec's
            reconstruction gradient 1e-5 against the GAN's.
        width: Width of Enc, Dec and Dis (conv feature maps next to the image, or MLP units).
        discriminator_normalization: Normalization of Dis (the paper: batch norm).
        encoder_optimizer: Enc's optimizer.
        decoder_optimizer: Dec's optimizer.
        discriminator_optimizer: Dis's optimizer.
    """

    step_network = "decoder"
    sampling_network = "decoder"

    def __init__(
        self,
        latent_dim: PositiveInt = 128,
        data_shape: DataShape = (3, 64, 64),
        gamma: PositiveFloat = 1e-5,
        width: PositiveInt = 64,
        discriminator_normalization: Normalization = "batch",
        encoder_optimizer: OptimizerConfig = RMSPROP,
        decoder_optimizer: OptimizerConfig = RMSPROP,
        discriminator_optimizer: OptimizerConfig = RMSPROP,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.latent_dim, self.gamma = latent_dim, gamma
        self.data_shape = check_data_shape(data_shape)
        self.encoder = build_encoder(self.data_shape, 2 * latent_dim, width)
        self.decoder = build_generator(latent_dim, self.data_shape, width)
        self.discriminator = build_discriminator(self.data_shape, width, normalization=discriminator_normalization)
        self.optimized_networks = {
            "encoder": encoder_optimizer,
            "decoder": decoder_optimizer,
            "discriminator": discriminator_optimizer,
        }

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, _ = batch
        # Algorithm 1 takes the three gradients at the same parameters, then updates. Each block
        # reuses (detached) what the blocks before it computed ahead of their updates, so the
        # three steps in sequence are that simultaneous update.
        with self.optimize("encoder") as step:
            mean, log_var = gaussian_posterior(self.encoder, x)
            z = reparameterize(mean, log_var)
            prior_loss = kl_to_standard_normal(mean, log_var)
            llike = self.feature_reconstruction_nll(x, self.decoder(z))
            step(prior_loss + llike)

        z_prior = self.sample_latent(len(x))
        with self.optimize("decoder") as step:
            reconstructed, sampled = self.decoder(z.detach()), self.decoder(z_prior)
            reconstructed_logits, sampled_logits = self.discriminator(reconstructed), self.discriminator(sampled)
            gan_loss = nonsaturating_generator_loss(reconstructed_logits) + nonsaturating_generator_loss(sampled_logits)
            step(self.gamma * self.feature_reconstruction_nll(x, reconstructed) + gan_loss)

        with self.optimize("discriminator") as step:
            real_logits = self.discriminator(x)
            d_loss = vae_gan_discriminator_loss(
                real_logits, self.discriminator(reconstructed.detach()), self.discriminator(sampled.detach())
            )
            step(d_loss)

        self.log_dict(
            {
                "train/prior_kl": prior_loss,
                "train/feature_reconstruction_nll": llike,
                "train/dec_gan_loss": gan_loss,
                "train/d_loss": d_loss,
                "train/d_real": real_logits.detach().sigmoid().mean(),
                "train/reconstruction_error": self.reconstruction_error(x),
            },
            prog_bar=True,
        )

    def feature_reconstruction_nll(self, x: Tensor, reconstructed: Tensor) -> Tensor:
        """L_llike^Dis_l of x and its reconstruction; both go through Dis in one batch, so that
        batch norm normalises their features alike (as the paper's reference code does)."""
        real_features, reconstructed_features = self.discriminator.features(torch.cat([x, reconstructed])).chunk(2)
        return feature_reconstruction_nll(real_features, reconstructed_features)

    # ----------------------------------------------------------------------- inference API
    def encode(self, x: Tensor, sample: bool = False) -> Tensor:
        """Codes of ``x``: the posterior mean (for metrics), or a reparameterised sample."""
        return gaussian_code(self.encoder, x, sample)

    def reconstruct(self, x: Tensor) -> Tensor:
        """Dec(Enc(x)) of images ``x`` [B, C, H, W] at the posterior mean (same shape)."""
        return self.generate(self.encode(x))
