"""Adversarial losses as pure functions of network outputs.

Discriminator outputs are logits (no sigmoid); critic outputs are unbounded scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_modules.losses.divergences import FDivergence


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


def fgan_variational_bound(real_outputs: Tensor, fake_outputs: Tensor, divergence: FDivergence) -> Tensor:
    """Nowozin et al. 2016, eq. 6 with T = g_f(V) (§3, Table 2): the lower bound on D_f(P‖Q)

    F = E_P[g_f(V(x))] - E_Q[f*(g_f(V(x)))],

    P the data, Q the generator, V the critic's raw outputs. The critic maximises F (its loss is -F),
    the generator minimises it; F itself is the divergence estimate. f*(g_f(V)) is evaluated in one
    stable closed form (finite wherever its exact value is, e.g. Jensen-Shannon's at any V).
    """
    return divergence.activation(real_outputs).mean() - divergence.conjugate_of_activation(fake_outputs).mean()


def fgan_minimax_generator_loss(fake_outputs: Tensor, divergence: FDivergence) -> Tensor:
    """Nowozin et al. 2016, Algorithm 1 (generator update, minimising eq. 6): the part of F that
    depends on the generator, -E_Q[f*(g_f(V(x)))]."""
    return -divergence.conjugate_of_activation(fake_outputs).mean()


def fgan_practical_generator_loss(fake_outputs: Tensor, divergence: FDivergence) -> Tensor:
    """Nowozin et al. 2016, §3.2 "practical considerations": the generator maximises E_Q[g_f(V(x))]
    instead (Goodfellow et al.'s non-saturating trick, same stationary point); this is its negation."""
    return -divergence.activation(fake_outputs).mean()


def least_squares_discriminator_loss(real_outputs: Tensor, fake_outputs: Tensor, real_target: float, fake_target: float) -> Tensor:
    """Mao et al. 2017, eq. 2 (D's side): ½ E_x[(D(x) - b)²] + ½ E_z[(D(G(z)) - a)²],
    b = ``real_target``, a = ``fake_target``."""
    return 0.5 * ((real_outputs - real_target) ** 2).mean() + 0.5 * ((fake_outputs - fake_target) ** 2).mean()


def least_squares_generator_loss(fake_outputs: Tensor, target: float) -> Tensor:
    """Mao et al. 2017, eq. 2 (G's side): ½ E_z[(D(G(z)) - c)²], c = ``target``."""
    return 0.5 * ((fake_outputs - target) ** 2).mean()


def reconstruction_energy(data: Tensor, reconstruction: Tensor) -> Tensor:
    """EBGAN (Zhao et al. 2017, §2.3): the auto-encoder discriminator's energy D(x) = ‖Dec(Enc(x)) - x‖²,
    here the mean squared error over each sample's elements (so a margin means the same at any size): [B]."""
    return ((reconstruction - data) ** 2).flatten(1).mean(1)


def energy_discriminator_loss(real_energy: Tensor, fake_energy: Tensor, margin: float) -> Tensor:
    """EBGAN (Zhao et al. 2017), eq. 1: L_D = D(x) + [m - D(G(z))]^+, averaged over the batch."""
    return real_energy.mean() + F.relu(margin - fake_energy).mean()


def pulling_away_term(codes: Tensor) -> Tensor:
    """EBGAN (Zhao et al. 2017), eq. 6: f_PT(S) = 1/(N(N-1)) Σ_i Σ_{j≠i} (S_iᵀS_j / (‖S_i‖ ‖S_j‖))²
    over the N codes S of a batch (flattened): the mean squared cosine similarity of distinct pairs.
    A batch of one has no pair: the term is 0 there (with a zero gradient), not 0/0."""
    unit = F.normalize(codes.flatten(1), dim=1)
    n = len(codes)
    distinct = ~torch.eye(n, dtype=torch.bool, device=codes.device)
    return ((unit @ unit.T) ** 2 * distinct).sum() / max(n * (n - 1), 1)


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


def gaussian_nll(target: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """-log N(target; mean, diag(exp(log_var))), summed over the last dim, averaged over the batch.

    As the info loss this is -L_info of IDGAN-SC eq. 5 (InfoGAN's L_I) without the constant H(c):
    Q's Gaussian log-likelihood of the code c that generated the sample.
    """
    squared = (target - mean) ** 2 * torch.exp(-log_var)
    return 0.5 * (log_var + squared + math.log(2 * math.pi)).sum(-1).mean()


def kl_to_standard_normal(mean: Tensor, log_var: Tensor) -> Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) = ½ Σ_j (μ_j² + σ_j² - log σ_j² - 1) (Kingma & Welling
    2014, appendix B): the regulariser of IDGAN-SC eq. 1, summed over dims, averaged over the batch."""
    return kl_per_dimension(mean, log_var).sum()


def kl_per_dimension(mean: Tensor, log_var: Tensor) -> Tensor:
    """The terms of ``kl_to_standard_normal``, ½ (μ_j² + σ_j² - log σ_j² - 1) for each dimension j,
    averaged over the batch: shape [dims]."""
    return 0.5 * (mean**2 + log_var.exp() - log_var - 1).mean(0)


def bernoulli_nll(logits: Tensor, target: Tensor) -> Tensor:
    """-log p(x|z) for a Bernoulli decoder (IDGAN-SC eq. 1's reconstruction term for binary data):
    binary cross-entropy of the decoder's logits, summed over pixels, averaged over the batch."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(-1).mean()


def supervised_contrastive_loss(
    representations: Tensor,
    labels: Tensor,
    tau_positive: float,
    tau_all: float,
    reduction: Literal["mean", "sum"] = "mean",
) -> Tensor:
    """IDGAN-SC eq. 6 (SupCon, Khosla et al. 2020, with separate temperatures):

    L_SC = Σ_{i∈I'} L_i  ("sum", eq. 6 as printed)   or   1/|I'| Σ_{i∈I'} L_i  ("mean"),
    L_i  = -1/|P(i)| Σ_{p∈P(i)} log( exp(r_i·r_p / τ1) / Σ_{j∈A(i)} exp(r_i·r_j / τ2) )

    with A(i) every other sample, P(i) those sharing i's label and I' the anchors with a positive
    (P(i) non-empty). ``representations`` are the L2-normalised r [m, d]. τ1 = τ2 is Khosla et al.'s
    L^sup_out. Eq. 6 (like Khosla et al.'s eq. 2, which it copies) sums over the anchors; Khosla et
    al.'s reference code averages, which keeps α's meaning for any number of pairs m ("sum" is
    "mean" with α multiplied by |I'|, i.e. by m = 384 on dSprites).

    Degenerate cases: as in the reference code, an anchor without a positive contributes nothing
    and takes no gradient from its own term (it still serves as a negative of the others); unlike
    it, such anchors do not count in the mean either (eq. 6's 1/|I'|), so the loss's scale does not
    depend on how many anchors lack a positive. When no anchor has one (distinct labels, e.g. m = 2
    pairs of k = 10 code dimensions; always for a batch of one) the loss is 0 with a zero gradient,
    still part of the graph. The masks decide on-device: no host synchronisation.
    """
    similarity = representations @ representations.T
    others = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positives = (labels[:, None] == labels[None, :]) & others
    counts = positives.sum(1)
    anchors = counts > 0
    # The rows of anchors outside I' are replaced by zeros before the logsumexp: in a batch of one
    # the row is all -inf, whose logsumexp has a NaN gradient even where the term is discarded.
    logits = (similarity / tau_all).masked_fill(~others, float("-inf"))
    log_denominator = torch.logsumexp(torch.where(anchors[:, None], logits, 0.0), dim=1, keepdim=True)
    log_ratio = similarity / tau_positive - log_denominator
    per_anchor = -(log_ratio * positives).sum(1) / counts.clamp(min=1)
    if reduction == "sum":
        return per_anchor.sum()
    return per_anchor.sum() / anchors.sum().clamp(min=1)


def nt_xent_loss(codes: Tensor, other_view_codes: Tensor, temperature: float) -> Tensor:
    """SimCLR (Chen et al. 2020), eq. 1, the NT-Xent loss, averaged over all 2N anchors (§2's L):

    ℓ(i, j) = -log( exp(sim(z_i, z_j) / τ) / Σ_{k≠i} exp(sim(z_i, z_k) / τ) ),

    over the 2N codes z of two views of N images (``codes`` [N, d] and ``other_view_codes`` [N, d],
    row n of each a view of image n), (i, j) the two views of one image, sim the cosine similarity.
    The codes need not be normalised. It is SupCon (Khosla et al. 2020) with each image its own
    label, so ``supervised_contrastive_loss`` computes it.
    """
    representations = F.normalize(torch.cat([codes, other_view_codes]), dim=1)
    images = torch.arange(len(codes), device=codes.device).repeat(2)
    return supervised_contrastive_loss(representations, images, temperature, temperature)


def squared_reconstruction_error(data: Tensor, reconstruction: Tensor) -> Tensor:
    """‖x - Dec(E(x))‖²₂ (seed 000's reconstruction term, weighted by its ε): the squared error
    summed over each sample's elements, averaged over the batch."""
    return ((reconstruction - data) ** 2).flatten(1).sum(1).mean()


def contrastive_regularization_loss(cr_logits: Tensor, dims: Tensor) -> Tensor:
    """InfoGAN-CR (Lin et al. 2020, eq. 2's -α I(x1, x2; d) term, as the reference code trains it):
    softmax cross-entropy of the CR discriminator's logits over the code dimensions against the
    dimension d each pair (x1, x2) was built from. G and the CR discriminator both minimise it."""
    return F.cross_entropy(cr_logits, dims)


def total_correlation_estimate(tc_logits: Tensor) -> Tensor:
    """FactorVAE (Kim & Mnih 2018, §3, density-ratio trick): TC(z) ≈ E_q(z)[log D(z) / (1 - D(z))]
    for a discriminator with two logits per code, class 0 "from q(z)", class 1 "permuted". The
    log-odds log(D/(1-D)) is the difference of the two logits."""
    return (tc_logits[:, 0] - tc_logits[:, 1]).mean()


def tc_discriminator_loss(logits_q: Tensor, logits_permuted: Tensor) -> Tensor:
    """FactorVAE (Kim & Mnih 2018), Algorithm 2: the discriminator maximises
    ½ E[log D(z)] + ½ E[log(1 - D(z̃))], z ~ q(z), z̃ ~ permute_dims(q(z)); this is its negation."""
    zeros = torch.zeros(len(logits_q), dtype=torch.long, device=logits_q.device)
    ones = torch.ones(len(logits_permuted), dtype=torch.long, device=logits_permuted.device)
    return 0.5 * (F.cross_entropy(logits_q, zeros) + F.cross_entropy(logits_permuted, ones))


def realism_critic_loss(real_logits: Tensor, prior_logits: Tensor, actor_logits: Tensor) -> Tensor:
    """Engel et al. 2017, §3 (the realism critic in latent space; seed 004's L_D(z)):

    L_D = E_q(z|x)[-log D(z)] + E_p(z)[-log(1 - D(z))] + E_p(z)[-log(1 - D(G(z)))],

    real codes from the encoder, fake ones from the prior and from the actor; D = sigmoid(logits).
    """
    return discriminator_loss(real_logits, prior_logits) + F.softplus(actor_logits).mean()


def latent_distance_penalty(transformed: Tensor, latent: Tensor, encoder_std: Tensor) -> Tensor:
    """Engel et al. 2017, §3: L_dist(z', z) = (1/σ̄_z²) log(1 + (z' - z)²), which keeps the actor's
    z' near its input z (so the samples stay diverse), measured in units of σ̄_z, the encoder's
    posterior std averaged over the data (one value per dimension, or one for all). Summed over the
    code dimensions, averaged over the batch (like the KL term)."""
    return (torch.log1p((transformed - latent) ** 2) / encoder_std**2).sum(-1).mean()


def bidirectional_generator_loss(real_pair_logits: Tensor, fake_pair_logits: Tensor) -> Tensor:
    """BiGAN (Donahue et al. 2017, §3.4) and ALI: the loss the generator and encoder minimise
    together, the discriminator's loss with the labels swapped,

    L_EG = -E_z[log D(G(z), z)] - E_x[log(1 - D(x, E(x)))],

    which has min_{G,E} V's fixed point but does not saturate when D wins (the non-saturating
    heuristic, applied to both sides of the pair)."""
    return discriminator_loss(fake_pair_logits, real_pair_logits)


def feature_reconstruction_nll(real_features: Tensor, reconstructed_features: Tensor) -> Tensor:
    """VAE-GAN (Larsen et al. 2016, eqs. 6-7): L_llike^Dis_l = -log N(Dis_l(x); Dis_l(x̃), I),
    the Gaussian log-likelihood of the real datum's l-th layer discriminator features around the
    reconstruction's, summed over features, averaged over the batch (x̃ = Dec(z), z ~ q(z|x))."""
    real, reconstructed = real_features.flatten(1), reconstructed_features.flatten(1)
    return gaussian_nll(real, reconstructed, torch.zeros_like(real))


def vae_gan_discriminator_loss(real_logits: Tensor, reconstructed_logits: Tensor, sampled_logits: Tensor) -> Tensor:
    """VAE-GAN (Larsen et al. 2016, eq. 9, Algorithm 1): L_GAN = log Dis(x) + log(1 - Dis(x̃))
    + log(1 - Dis(x_p)) with x̃ = Dec(Enc(x)), x_p = Dec(z_p), z_p ~ N(0, I); Dis maximises it,
    this is its negation. Each term is averaged over its batch."""
    return discriminator_loss(real_logits, reconstructed_logits) + F.softplus(sampled_logits).mean()
