"""BiGAN (Donahue et al. 2017) and ALI (Dumoulin et al. 2017): adversarially learned inference.

    min_{G,E} max_D  V(D, E, G) = E_x[log D(x, E(x))] + E_z[log(1 - D(G(z), z))]

An encoder E maps data to latents, a generator G maps latents to data, and D sees (datum, latent)
pairs: it tells the encoder's pairs (x, E(x)) from the generator's (G(z), z), and E and G together
try to fool it. At the optimum the two joint distributions agree, so E inverts G, which makes the
reconstructions G(E(x)) the diagnostic of training. BiGAN's encoder is deterministic; ALI's draws
z ~ q(z|x) = N(μ(x), σ²(x)) by reparameterisation.
"""

from __future__ import annotations

from jsonargparse.typing import PositiveInt
from torch import Tensor

from lightning_modules.base import AdversarialModule, DataShape
from lightning_modules.losses import bidirectional_generator_loss, discriminator_loss
from lightning_modules.nets import (
    JointDiscriminator,
    build_encoder,
    build_generator,
    check_data_shape,
)
from lightning_modules.nets.dcgan import Normalization
from lightning_modules.training.latents import gaussian_code
from lightning_modules.training.optim import OptimizerConfig


class BiGAN(AdversarialModule):
    """BiGAN / ALI on images (DCGAN-style conv nets) or vectors (MLPs), chosen by ``data_shape``.

    Args:
        latent_dim: Size of z ~ N(0, I) (BiGAN: 50 on MNIST; ALI: 256 on CelebA).
        data_shape: Shape of one datum: [channels, size, size] with size 28, 32 or 64, or [features].
        stochastic_encoder: ALI's Gaussian encoder z = μ(x) + σ(x) ε (true) or BiGAN's
            deterministic z = E(x) (false).
        width: Width of G, E and D's data branch (conv feature maps next to the image, or MLP units).
        joint_hidden: Features each branch of D(x, z) hands to its joint head, and the head's
            hidden units (ALI: 512).
        discriminator_normalization: Normalization of D's data branch.
        generator_optimizer: G's optimizer (BiGAN: Adam, lr 2e-4, β1 0.5, weight decay 2.5e-5).
        encoder_optimizer: E's optimizer, stepped with G's from the same loss.
        discriminator_optimizer: D's optimizer.
    """

    def __init__(
        self,
        latent_dim: PositiveInt = 50,
        data_shape: DataShape = (1, 28, 28),
        stochastic_encoder: bool = False,
        width: PositiveInt = 64,
        joint_hidden: PositiveInt = 512,
        discriminator_normalization: Normalization = "batch",
        generator_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.5, 0.999), weight_decay=2.5e-5),
        encoder_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.5, 0.999), weight_decay=2.5e-5),
        discriminator_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.5, 0.999), weight_decay=2.5e-5),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.latent_dim, self.stochastic_encoder = latent_dim, stochastic_encoder
        self.data_shape = check_data_shape(data_shape)
        self.generator = build_generator(latent_dim, self.data_shape, width)
        encoder_outputs = 2 * latent_dim if stochastic_encoder else latent_dim  # ALI: mean and log-variance
        self.encoder = build_encoder(self.data_shape, encoder_outputs, width)
        self.discriminator = JointDiscriminator(self.data_shape, latent_dim, width, joint_hidden, discriminator_normalization)
        self.optimized_networks = {
            "discriminator": discriminator_optimizer,
            "generator": generator_optimizer,
            "encoder": encoder_optimizer,
        }

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, _ = batch
        encoded = self.encode(x, sample=True)
        z = self.sample_latent(len(x))
        generated = self.generator(z)

        with self.optimize("discriminator") as step:
            real_logits = self.discriminator(x, encoded.detach())
            fake_logits = self.discriminator(generated.detach(), z)
            d_loss = discriminator_loss(real_logits, fake_logits)
            step(d_loss)
        self.log_discriminator(d_loss, real_logits, fake_logits, reconstruction_error=self.reconstruction_error(x))

        if self.generator_turn():
            with self.optimize("generator", "encoder") as step:
                eg_loss = bidirectional_generator_loss(self.discriminator(x, encoded), self.discriminator(generated, z))
                step(eg_loss)
            self.log("train/eg_loss", eg_loss, prog_bar=True)

    # ----------------------------------------------------------------------- inference API
    def encode(self, x: Tensor, sample: bool = False) -> Tensor:
        """Codes of ``x``: E(x), or for ALI the posterior mean (``sample=False``, for metrics and
        reconstructions) or a reparameterised sample z ~ q(z|x) (``sample=True``, for training)."""
        return gaussian_code(self.encoder, x, sample) if self.stochastic_encoder else self.encoder(x)

    def reconstruct(self, x: Tensor) -> Tensor:
        """G(E(x)) of images ``x`` [B, C, H, W] (same shape; BiGAN's inversion, not trained to reconstruct)."""
        return self.generate(self.encode(x))
