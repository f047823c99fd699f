"""Adversarial losses as pure functions of network outputs.

Discriminator outputs are logits (no sigmoid); critic outputs are unbounded scores.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Goodfellow et al. 2014, eq. 1 (the discriminator maximises it; this is its negation):

    L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))], with D = sigmoid(logits).
    Computed as softplus(-l_real) + softplus(l_fake), which is exact and overflow-free.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def nonsaturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """Goodfellow et al. 2014, §3 (non-saturating heuristic): L_G = -E_z[log D(G(z))]."""
    return F.softplus(-fake_logits).mean()


def wasserstein_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Arjovsky et al. 2017, eq. 3 negated for minimisation: L_C = E_z[C(G(z))] - E_x[C(x)]."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: Tensor) -> Tensor:
    """Arjovsky et al. 2017, Algorithm 1: L_G = -E_z[C(G(z))]."""
    return -fake_scores.mean()


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    alpha: Tensor | None = None,
) -> Tensor:
    """Gulrajani et al. 2017, eq. 3: E_x̂[(||∇_x̂ C(x̂)||_2 - 1)^2], x̂ = α x + (1 - α) G(z).

    One α ~ U[0, 1] per sample (Algorithm 1, line 4), broadcast over the sample's other dims.
    The graph is kept (create_graph) so the penalty trains the critic.
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    alpha = alpha.view(-1, *([1] * (real.dim() - 1)))
    interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(interpolates)
    (gradients,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
    return ((gradients.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
