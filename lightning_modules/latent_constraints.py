"""Latent constraints (Engel et al. 2017; seed 004): conditional generation from an unconditional VAE.

A VAE trained by its own config with a small decoder σ (0.1: sharp reconstructions, poor prior
samples) stays frozen. In its latent space, an actor G(z, y) moves prior samples z to codes z'
that a critic D(z, y) cannot tell from the posterior codes q(z|x) of data with labels y; the
decoder turns z' into images. New labels need only the small actor and critic retrained.

    critic:  min  E_q(z|x)[-log D(z, y)] + E_p(z)[-log(1 - D(z, y))] + E_p(z)[-log(1 - D(G(z, y), y))]
                  + λ_GP · gradient penalty
    actor:   min  E_p(z)[-log D(G(z, y), y)] + λ_dist · (1/σ̄_z²) log(1 + (G(z, y) - z)²)

Generate with ``sample(n, labels=...)`` or, from a trained checkpoint::

    python -m lightning_modules predict --config configs/latent_constraints_mnist.yaml \\
        --ckpt_path runs/latent_constraints_mnist/checkpoints/last.ckpt \\
        --data datamodules.LabelsDataModule --data.labels='[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]'

which writes the images of each label (``callbacks.PredictionGrid``) under the run's directory.
"""

from __future__ import annotations

import torch
from jsonargparse.typing import NonNegativeFloat, PositiveInt
from torch import Tensor, nn

from lightning_modules.base import AdversarialModule, ImageShape
from lightning_modules.beta_vae import BetaVAE
from lightning_modules.conditional import ConditionalSampling, LabelKind
from lightning_modules.losses import (
    gradient_penalty,
    latent_distance_penalty,
    nonsaturating_generator_loss,
    realism_critic_loss,
)
from lightning_modules.nets import MLP, image_shape
from lightning_modules.training.latents import (
    gated_residual,
    gaussian_posterior,
    reparameterize,
)
from lightning_modules.training.optim import OptimizerConfig
from lightning_modules.training.pretrained_vae import FrozenVAE, PretrainedVAE


class LatentActor(nn.Module):
    """G(z, y): an MLP on [z, y] whose output gates a residual step (``gated_residual``)."""

    def __init__(self, latent_dim: int, label_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = MLP(latent_dim + label_dim, 2 * latent_dim, hidden)

    def forward(self, latent: Tensor, labels: Tensor) -> Tensor:
        return gated_residual(latent, self.net(torch.cat([latent, labels], 1)))


class LatentCritic(nn.Module):
    """D(z, y): an MLP on [z, y] giving one logit per code."""

    def __init__(self, latent_dim: int, label_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = MLP(latent_dim + label_dim, 1, hidden)

    def forward(self, latent: Tensor, labels: Tensor) -> Tensor:
        return self.net(torch.cat([latent, labels], 1))


#: The VAE whose latent space the actor and critic work in (kept whole: its encoder and decoder).
PRETRAINED_VAE = FrozenVAE("vae_checkpoint", attribute="vae", latent_argument="latent_dim", vae_class=BetaVAE,
                           role="pretrained VAE", config="configs/latent_constraints_vae_mnist.yaml")


class LatentConstraints(ConditionalSampling, PretrainedVAE, AdversarialModule, frozen_vae=PRETRAINED_VAE):
    """Attribute-conditional latent constraints on a frozen β-VAE.

    Args:
        vae_checkpoint: The VAE's checkpoint (the default is where
            configs/latent_constraints_vae_mnist.yaml writes it). Its weights are embedded in this
            model's checkpoints, so resuming does not need the file.
        latent_dim: The VAE's latent_dim (checked against the checkpoint).
        data_shape: The VAE's image shape [channels, size, size] (checked against the checkpoint).
        label_kind: "classes" (MNIST digits, one-hot encoded), "attributes" (CelebA's 0/1 vectors),
            or "none": the unconditional realism constraint (G(z), D(z); labels ignored).
        num_labels: Number of classes, or length of the attribute vector.
        hidden: Hidden layers of the actor and the critic (reference: 4 layers of 2048, ReLU).
        distance_weight: λ_dist of the actor's distance penalty (reference: 0.1).
        penalty_weight: λ_GP, the critic's gradient penalty weight (reference: 10), on random
            interpolates of posterior codes and actor outputs.
        n_critic: Critic updates per actor update (reference: 10).
        actor_optimizer: Reference: Adam, lr 3e-4.
        critic_optimizer: Reference: Adam, lr 3e-4.
    """

    step_network = "actor"
    sampling_network = "actor"
    output_range = (0.0, 1.0)

    def __init__(
        self,
        vae_checkpoint: str | None = "runs/latent_constraints_vae_mnist/checkpoints/last.ckpt",
        latent_dim: PositiveInt = 64,
        data_shape: ImageShape = (1, 28, 28),
        label_kind: LabelKind = "classes",
        num_labels: PositiveInt = 10,
        hidden: tuple[PositiveInt, ...] = (2048,) * 4,
        distance_weight: NonNegativeFloat = 0.1,
        penalty_weight: NonNegativeFloat = 10.0,
        n_critic: PositiveInt = 10,
        actor_optimizer: OptimizerConfig = OptimizerConfig(lr=3e-4, betas=(0.9, 0.999)),
        critic_optimizer: OptimizerConfig = OptimizerConfig(lr=3e-4, betas=(0.9, 0.999)),
        **kwargs,
    ) -> None:
        super().__init__(n_critic=n_critic, **kwargs)
        self.vae_checkpoint, self.latent_dim = vae_checkpoint, latent_dim
        channels, size = image_shape(data_shape, "LatentConstraints")
        self.data_shape = (channels, size, size)
        self.label_kind, self.num_labels = label_kind, num_labels
        self.distance_weight, self.penalty_weight = distance_weight, penalty_weight
        self.actor = LatentActor(latent_dim, self.label_dim, hidden)
        self.critic = LatentCritic(latent_dim, self.label_dim, hidden)
        self.optimized_networks = {"critic": critic_optimizer, "actor": actor_optimizer}
        self.vae: BetaVAE | None = None

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        labels = self.label_vector(y)
        real, encoder_std = self.posterior_codes(x)

        with self.optimize("critic") as step:
            prior = torch.randn_like(real)
            with torch.no_grad():
                transformed = self.actor(prior, labels)
            real_logits = self.critic(real, labels)
            critic_loss = realism_critic_loss(real_logits, self.critic(prior, labels), self.critic(transformed, labels))
            penalty = gradient_penalty(lambda z: self.critic(z, labels), real, transformed)
            step(critic_loss + self.penalty_weight * penalty)
        self.log_dict({"train/critic_loss": critic_loss, "train/gradient_penalty": penalty}, prog_bar=True)

        if self.generator_turn():
            with self.optimize("actor") as step:
                prior = torch.randn_like(real)
                transformed = self.actor(prior, labels)
                actor_loss = nonsaturating_generator_loss(self.critic(transformed, labels))
                distance = latent_distance_penalty(transformed, prior, encoder_std)
                step(actor_loss + self.distance_weight * distance)
            self.log_dict(
                {
                    "train/actor_loss": actor_loss,
                    "train/distance_penalty": distance,
                    "train/mean_shift": (transformed - prior).detach().norm(dim=1).mean(),
                },
                prog_bar=True,
            )

    @torch.no_grad()
    def posterior_codes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z ~ q(z|x) of the batch (the critic's real codes) and σ̄_z, the encoder's std averaged
        over the batch (per dimension), which scales the distance penalty."""
        mean, log_var = gaussian_posterior(self.vae.encoder, x)
        return reparameterize(mean, log_var), (0.5 * log_var).exp().mean(0)

    # ----------------------------------------------------------------------- inference API
    def transform(self, latent: Tensor, labels: Tensor) -> Tensor:
        """z' = G(z, y) for latents [B, latent_dim] and labels ([B] classes or [B, num_labels])."""
        return self.sampler()(latent, self.label_vector(labels))

    def generate(self, latent: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images in [0, 1]: the VAE's decoding of G(z, y); without labels, one fixed label."""
        labels = self.fixed_labels(len(latent)) if labels is None else labels
        return self.vae.generate(self.transform(latent, labels))

    def encode(self, x: Tensor) -> Tensor:
        """The frozen VAE's posterior mean codes of ``x``."""
        return self.vae.encode(x)
