"""FactorVAE (Kim & Mnih, ICML 2018): a VAE that also penalises the total correlation of q(z).

    L = E_q(z|x)[log p(x|z)] - KL(q(z|x) || N(0, I)) - γ TC(z),   TC(z) = KL(q(z) || Π_j q(z_j))

TC is estimated with the density-ratio trick (§3): a discriminator D tells codes z ~ q(z) from
codes whose dimensions were each shuffled across a second batch (samples of Π_j q(z_j)), and
TC ≈ E_q(z)[log D(z) / (1 - D(z))]. Algorithm 2 alternates a VAE step and a D step.
"""

from __future__ import annotations

from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import Tensor

from lightning_modules.beta_vae import BetaVAE
from lightning_modules.losses import (
    kl_to_standard_normal,
    tc_discriminator_loss,
    total_correlation_estimate,
)
from lightning_modules.nets import MLP
from lightning_modules.training.latents import (
    gaussian_posterior,
    permute_dims,
    reparameterize,
)
from lightning_modules.training.optim import OptimizerConfig


class FactorVAE(BetaVAE):
    """The β-VAE's encoder, decoder and likelihoods, with β = 1 and a total-correlation penalty γ.

    Each training batch is split in two halves, the paper's two minibatches: the first trains the
    VAE; the codes of the second, permuted dimension-wise, are the discriminator's "fake" samples.

    Args:
        tc_weight: γ (the paper's dSprites figures use γ = 35; InfoGAN-CR's FactorVAE baseline 40).
        discriminator_hidden: Hidden layers of the TC discriminator (paper: 6 layers of 1000 units,
            leaky ReLU 0.2, then two logits).
        discriminator_optimizer: The paper: Adam, lr 1e-4, betas (0.5, 0.9).
        optimizer: Encoder and decoder. The paper: Adam, lr 1e-4, betas (0.9, 0.999).
        **kwargs: The β-VAE's (latent_dim, likelihood, data_shape, ...); ``beta`` weights the KL
            term and stays 1 in FactorVAE; ``kl_annealing`` schedules it.
    """

    def __init__(
        self,
        tc_weight: PositiveFloat = 35.0,
        discriminator_hidden: tuple[PositiveInt, ...] = (1000,) * 6,
        discriminator_optimizer: OptimizerConfig = OptimizerConfig(lr=1e-4, betas=(0.5, 0.9)),
        beta: PositiveFloat = 1.0,
        optimizer: OptimizerConfig = OptimizerConfig(lr=1e-4, betas=(0.9, 0.999)),
        **kwargs,
    ) -> None:
        super().__init__(beta=beta, optimizer=optimizer, **kwargs)
        self.tc_weight = tc_weight
        self.tc_discriminator = MLP(self.latent_dim, 2, discriminator_hidden, activation="leaky_relu")
        self.optimized_networks["tc_discriminator"] = discriminator_optimizer

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Algorithm 2 of Kim & Mnih (2018): the VAE minimises -ELBO + γ TC on the first half of the
        batch (TC estimated from the discriminator's logits, §3), then the discriminator learns
        to tell its codes z ~ q(z) from the dimension-wise permuted codes of the second half.

        Raises:
            ValueError: a batch of fewer than 4 images (two halves of at least 2).
        """
        x, _ = batch
        if len(x) < 4:
            raise ValueError(f"FactorVAE splits each batch in two halves of at least 2; got a batch of {len(x)}")
        x, x_other = x.chunk(2)
        kl_weight = self.kl_weight()

        with self.optimize("encoder", "decoder") as step:  # VAE step
            mean, log_var = gaussian_posterior(self.encoder, x)
            z = reparameterize(mean, log_var)
            reconstruction = self.reconstruction_nll(self.decoder(z), x)
            kl = kl_to_standard_normal(mean, log_var)
            tc = total_correlation_estimate(self.tc_discriminator(z))
            step(reconstruction + kl_weight * kl + self.tc_weight * tc)

        with self.optimize("tc_discriminator") as step:  # D step
            z_other = reparameterize(*gaussian_posterior(self.encoder, x_other)).detach()
            logits_q, logits_permuted = self.tc_discriminator(z.detach()), self.tc_discriminator(permute_dims(z_other))
            d_loss = tc_discriminator_loss(logits_q, logits_permuted)
            step(d_loss)

        accuracy = 0.5 * ((logits_q.argmax(1) == 0).float().mean() + (logits_permuted.argmax(1) == 1).float().mean())
        self.log_dict(
            {
                "train/reconstruction_nll": reconstruction,
                "train/kl": kl,
                "train/tc_estimate": tc,
                "train/tc_discriminator_loss": d_loss,
                "train/tc_discriminator_accuracy": accuracy,
                "train/elbo": -(reconstruction + kl),
                "train/kl_weight": kl_weight,
            },
            prog_bar=True,
        )
