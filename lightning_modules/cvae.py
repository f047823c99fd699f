"""Conditional VAE (Sohn et al. 2015; seeds 000 and 003): encoder q(z|x, y), decoder p(x|z, y),
prior N(0, I) independent of the label y.

    L = E_q(z|x,y)[log p(x|z, y)] - β KL(q(z|x, y) || N(0, I)),   maximised (we minimise its negation).
"""

from __future__ import annotations

import torch
from jsonargparse.typing import PositiveFloat, PositiveInt
from torch import Tensor

from lightning_modules.beta_vae import BetaVAE
from lightning_modules.conditional import ConditionalSampling, LabelKind
from lightning_modules.losses import kl_to_standard_normal
from lightning_modules.training.latents import gaussian_posterior, reparameterize


class CVAE(ConditionalSampling, BetaVAE):
    """The β-VAE's networks and likelihoods, both conditioned on the label vector y: the encoder
    sees y as ``num_labels`` constant image channels appended to x, the decoder sees [z, y].

    Generate with ``sample(n, labels=...)``, ``generate(latent, labels)``, or ``predict`` (see
    ``ConditionalSampling``); encode and reconstruct with ``encode(x, labels)``, ``reconstruct(x, labels)``.

    Args:
        label_kind: "classes" (MNIST digits, one-hot encoded), "attributes" (CelebA's 0/1 vectors),
            or "none" (a plain VAE).
        num_labels: Number of classes, or length of the attribute vector.
        beta: The KL weight (1: the CVAE of Sohn et al.); ``kl_annealing`` schedules it (seed 000:
            linear warm-up over the first half of training).
        **kwargs: The β-VAE's (latent_dim, kl_annealing, likelihood, data_shape, width, ...).
    """

    def __init__(
        self,
        label_kind: LabelKind = "classes",
        num_labels: PositiveInt = 10,
        beta: PositiveFloat = 1.0,
        **kwargs,
    ) -> None:
        self.label_kind, self.num_labels = label_kind, num_labels  # first: they size y, which the β-VAE's networks take
        super().__init__(beta=beta, **kwargs)

    def negative_elbo_terms(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        labels = self.label_vector(y)
        mean, log_var = self.posterior(x, labels)
        decoded = self.decoder(torch.cat([reparameterize(mean, log_var), labels], 1))
        return self.reconstruction_nll(decoded, x), kl_to_standard_normal(mean, log_var)

    def posterior(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, log-variance) of q(z|x, y) for label vectors [B, num_labels]."""
        label_maps = labels[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return gaussian_posterior(self.encoder, torch.cat([x, label_maps], 1))

    # ----------------------------------------------------------------------- inference API
    def generate(self, latent: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images in [0, 1] for latents [B, latent_dim] and labels ([B] classes or [B, num_labels]);
        without labels, one fixed label (``fixed_labels``)."""
        labels = self.fixed_labels(len(latent)) if labels is None else labels
        return super().generate(torch.cat([latent, self.label_vector(labels)], 1))

    def encode(self, x: Tensor, labels: Tensor, sample: bool = False) -> Tensor:
        """Codes of ``x`` given its labels: the posterior mean, or a reparameterised sample."""
        mean, log_var = self.posterior(x, self.label_vector(labels))
        return reparameterize(mean, log_var) if sample else mean

    def reconstruct(self, x: Tensor, labels: Tensor) -> Tensor:
        """The decoder's output at the posterior mean of images ``x`` [B, C, H, W] given their ``labels`` (same shape)."""
        return self.generate(self.encode(x, labels), labels)

    def encode_batch(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        return self.encode(*batch)

    def reconstruct_batch(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        return self.reconstruct(*batch)

