"""The f-divergences of f-GAN (Nowozin et al. 2016, Table 2) as (output activation g_f, conjugate f*) pairs.

The critic's raw output v is mapped into the domain of f* by g_f, and T = g_f(v) enters the
variational bound D_f(P‖Q) ≥ E_P[T(x)] - E_Q[f*(T(x))] (eq. 6). The losses never evaluate f* at a
rounded g_f(v): each row also gives f*(g_f(v)) as one closed form of v (softplus, expm1, ...; f*
itself where g_f is the identity, g_f itself for total variation), accurate wherever its exact
value is a finite float. Two rounded steps are not: in float32 g_f(v) reaches the edge of dom f*
(log 2 for Jensen-Shannon, 1 for Neyman χ² and squared Hellinger) near v = 17, where f* is
infinite or its gradient NaN though f*(g_f(v)) is about v or 2; in bfloat16 already at v = 8.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Divergence = Literal[
    "kl", "reverse_kl", "pearson", "neyman", "squared_hellinger", "jensen_shannon", "gan", "total_variation"
]


@dataclass(frozen=True)
class FDivergence:
    """One row of Table 2: ``activation`` is g_f (v -> T in dom f*), ``conjugate`` is f*(T), and
    ``conjugate_of_activation`` is f*(g_f(v)) in one numerically stable closed form, which the losses use."""

    activation: Callable[[Tensor], Tensor]
    conjugate: Callable[[Tensor], Tensor]
    conjugate_of_activation: Callable[[Tensor], Tensor]


def identity_activation(v: Tensor) -> Tensor:
    """Kullback-Leibler and Pearson χ²: g_f(v) = v (dom f* = all reals)."""
    return v


def kl_conjugate(t: Tensor) -> Tensor:
    """Kullback-Leibler, f(u) = u log u: f*(t) = exp(t - 1)."""
    return torch.exp(t - 1)


def reverse_kl_activation(v: Tensor) -> Tensor:
    """Reverse KL, f(u) = -log u: g_f(v) = -exp(-v) (dom f* = t < 0)."""
    return -torch.exp(-v)


def reverse_kl_conjugate(t: Tensor) -> Tensor:
    """Reverse KL: f*(t) = -1 - log(-t)."""
    return -1 - torch.log(-t)


def reverse_kl_conjugate_of_activation(v: Tensor) -> Tensor:
    """Reverse KL: f*(g_f(v)) = -1 - log(exp(-v)) = v - 1 (exp(-v) overflows float32 below v = -88)."""
    return v - 1


def pearson_conjugate(t: Tensor) -> Tensor:
    """Pearson χ², f(u) = (u - 1)²: f*(t) = t²/4 + t."""
    return t**2 / 4 + t


def one_minus_exp_activation(v: Tensor) -> Tensor:
    """Neyman χ² and squared Hellinger: g_f(v) = 1 - exp(-v) (dom f* = t < 1)."""
    return -torch.expm1(-v)


def neyman_conjugate(t: Tensor) -> Tensor:
    """Neyman χ², f(u) = (1 - u)²/u: f*(t) = 2 - 2 sqrt(1 - t)."""
    return 2 - 2 * torch.sqrt(1 - t)


def neyman_conjugate_of_activation(v: Tensor) -> Tensor:
    """Neyman χ²: with 1 - g_f(v) = exp(-v), f*(g_f(v)) = 2 - 2 exp(-v/2) = -2 expm1(-v/2)."""
    return -2 * torch.expm1(-v / 2)


def squared_hellinger_conjugate(t: Tensor) -> Tensor:
    """Squared Hellinger, f(u) = (sqrt(u) - 1)²: f*(t) = t / (1 - t)."""
    return t / (1 - t)


def squared_hellinger_conjugate_of_activation(v: Tensor) -> Tensor:
    """Squared Hellinger: with 1 - g_f(v) = exp(-v), f*(g_f(v)) = (1 - exp(-v)) / exp(-v) = expm1(v)."""
    return torch.expm1(v)


def jensen_shannon_activation(v: Tensor) -> Tensor:
    """Jensen-Shannon, f(u) = u log u - (u + 1) log((u + 1)/2): g_f(v) = log 2 - log(1 + exp(-v))
    (dom f* = t < log 2). This f's D_f is KL(P‖M) + KL(Q‖M) = 2·JS(P‖Q), M = (P + Q)/2: Table 1's
    ½ is not in the f that Table 2's conjugate belongs to, so the bound estimates 2·JS (at most log 4)."""
    return math.log(2) - F.softplus(-v)


def jensen_shannon_conjugate(t: Tensor) -> Tensor:
    """Jensen-Shannon: f*(t) = -log(2 - exp(t)), as -log 2 - log(1 - exp(t - log 2)) (no cancellation near log 2)."""
    return -math.log(2) - torch.log(-torch.expm1(t - math.log(2)))


def jensen_shannon_conjugate_of_activation(v: Tensor) -> Tensor:
    """Jensen-Shannon: exp(g_f(v)) = 2σ(v), so f*(g_f(v)) = -log(2 - 2σ(v)) = -log 2 - log σ(-v)
    = softplus(v) - log 2."""
    return F.softplus(v) - math.log(2)


def gan_activation(v: Tensor) -> Tensor:
    """GAN, f(u) = u log u - (u + 1) log(u + 1): g_f(v) = -log(1 + exp(-v)) = log σ(v) (dom f* = t < 0)."""
    return -F.softplus(-v)


def gan_conjugate(t: Tensor) -> Tensor:
    """GAN: f*(t) = -log(1 - exp(t)). With t = log σ(v) the bound is Goodfellow et al.'s
    E_P[log D] + E_Q[log(1 - D)], whose maximum is 2·JS(P‖Q) - log 4."""
    return -torch.log(-torch.expm1(t))


def gan_conjugate_of_activation(v: Tensor) -> Tensor:
    """GAN: f*(g_f(v)) = -log(1 - σ(v)) = -log σ(-v) = softplus(v)."""
    return F.softplus(v)


def total_variation_activation(v: Tensor) -> Tensor:
    """Total variation, f(u) = ½|u - 1|: g_f(v) = ½ tanh(v) (dom f* = |t| ≤ ½)."""
    return 0.5 * torch.tanh(v)


def total_variation_conjugate(t: Tensor) -> Tensor:
    """Total variation: f*(t) = t."""
    return t


#: Table 2 of Nowozin et al. 2016, by name.
DIVERGENCES: dict[str, FDivergence] = {
    "kl": FDivergence(identity_activation, kl_conjugate, kl_conjugate),
    "reverse_kl": FDivergence(reverse_kl_activation, reverse_kl_conjugate, reverse_kl_conjugate_of_activation),
    "pearson": FDivergence(identity_activation, pearson_conjugate, pearson_conjugate),
    "neyman": FDivergence(one_minus_exp_activation, neyman_conjugate, neyman_conjugate_of_activation),
    "squared_hellinger": FDivergence(
        one_minus_exp_activation, squared_hellinger_conjugate, squared_hellinger_conjugate_of_activation
    ),
    "jensen_shannon": FDivergence(
        jensen_shannon_activation, jensen_shannon_conjugate, jensen_shannon_conjugate_of_activation
    ),
    "gan": FDivergence(gan_activation, gan_conjugate, gan_conjugate_of_activation),
    "total_variation": FDivergence(total_variation_activation, total_variation_conjugate, total_variation_activation),
}
