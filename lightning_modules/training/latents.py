"""Operations on latent codes shared by the VAEs and the InfoGAN family."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from scipy.linalg import polar
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning
from torch import Tensor, nn


def gaussian_posterior(encoder: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """(mean, log-variance) of q(z|x) from an encoder whose output is their concatenation."""
    mean, log_var = encoder(x).chunk(2, dim=1)
    return mean, log_var.clamp(-20.0, 10.0)  # keeps exp(log_var) finite early in training


def reparameterize(mean: Tensor, log_var: Tensor) -> Tensor:
    """z = μ + σ ε, ε ~ N(0, I) (Kingma & Welling 2014): a sample that gradients flow through."""
    return mean + torch.randn_like(mean) * (0.5 * log_var).exp()


def gaussian_code(encoder: nn.Module, x: Tensor, sample: bool = False) -> Tensor:
    """A code of ``x`` under q(z|x): its mean (for metrics and reconstructions) or, with ``sample``,
    a reparameterised sample (for training)."""
    mean, log_var = gaussian_posterior(encoder, x)
    return reparameterize(mean, log_var) if sample else mean


def pairs_differing_in(codes: Tensor, first: Tensor, second: Tensor, dims: Tensor) -> tuple[Tensor, Tensor]:
    """IDGAN-SC §2.2: pair i keeps every dimension of ``codes[i]`` except ``dims[i]``, which takes
    the values ``first[i]`` and ``second[i]``. Returns the two codes [m, k] of each pair."""
    rows = torch.arange(len(codes), device=codes.device)
    code_1, code_2 = codes.clone(), codes.clone()
    code_1[rows, dims] = first
    code_2[rows, dims] = second
    return code_1, code_2


def pairs_sharing(first: Tensor, second: Tensor, dims: Tensor) -> tuple[Tensor, Tensor]:
    """InfoGAN-CR (Lin et al. 2020, reference code): pair i shares only dimension ``dims[i]``
    (taken from ``first[i]``); every other dimension comes from ``first[i]`` and ``second[i]``."""
    rows = torch.arange(len(first), device=first.device)
    code_2 = second.clone()
    code_2[rows, dims] = first[rows, dims]
    return first, code_2


def uniform_pairs_apart(
    shape: tuple[int, ...], gap: float = 0.0, low: float = -1.0, high: float = 1.0, device: torch.device | None = None
) -> tuple[Tensor, Tensor]:
    """Two tensors of U[low, high] values whose entries differ by at least ``gap`` (InfoGAN-CR's
    reference code, ``UniformLatent.sample_different``): draw both from U[low + gap/2, high - gap/2],
    then move each away from the other by gap/2. ``gap = 0`` gives two independent uniform draws.

    Raises:
        ValueError: ``gap`` outside [0, high - low].
    """
    if not 0.0 <= gap <= high - low:
        raise ValueError(f"gap must lie in [0, {high - low}], got {gap}")
    first, second = (torch.rand(shape, device=device) * (high - low - gap) + low + gap / 2 for _ in range(2))
    sign = torch.where(first > second, 1.0, -1.0)
    return first + sign * gap / 2, second - sign * gap / 2


def permute_dims(codes: Tensor) -> Tensor:
    """FactorVAE (Kim & Mnih 2018), Algorithm 1: each dimension of ``codes`` [B, d] shuffled across
    the batch by its own random permutation. The rows then sample the product of the marginals
    q̄(z) = Π_j q(z_j), the "fake" distribution of the total-correlation discriminator."""
    batch, dims = codes.shape
    order = torch.argsort(torch.rand(batch, dims, device=codes.device), dim=0)
    return codes.gather(0, order)


def gated_residual(latent: Tensor, actor_output: Tensor) -> Tensor:
    """Engel et al. 2017, the reference actor: z' = (1 - g) z + g dz, with the actor's output
    [B, 2d] split into gate logits (g = sigmoid) and a proposal dz. A closed gate leaves z as it is."""
    gate_logits, proposal = actor_output.chunk(2, dim=1)
    gate = torch.sigmoid(gate_logits)
    return (1 - gate) * latent + gate * proposal


def independent_rotation(codes: Tensor, dims: Sequence[int], seed: int = 0) -> Tensor:
    """The orthogonal matrix R [k, k] under which the rotated codes ``codes @ R.T`` are most
    independent over ``dims``: FastICA (Hyvärinen & Oja 2000; scikit-learn's) on ``codes[:, dims]``
    whitened, its unmixing matrix's nearest orthogonal matrix (the polar factor), each component
    then put on the dim it is closest to, with a positive sign, so that R is the identity where the
    codes are already independent along their axes. R leaves the other dims as they are.

    Why: a β-VAE's prior N(0, I) is the same in every rotation of the code, and its objective
    hardly prefers one among dims that carry the same information (Rolinek et al. 2019: the axes
    are fixed only where the dims' information differs), so such dims can each code a mix of two
    factors; in the quick start, x and y came out turned 15-43° on seeds 0-4. Under the rotation,
    independent factors become independent codes.

    Args:
        codes: posterior means [n, k] of n ≥ 2 ``len(dims)`` images.
        dims: the dims to rotate among (the others are left out: a dim near the prior is mostly
            noise, which whitening would scale up to the others' size).
        seed: FastICA's random start.

    Raises:
        ValueError: fewer than 2 ``len(dims)`` codes.
    """
    dims = list(dims)
    rotation = torch.eye(codes.shape[1], dtype=torch.float64)
    if len(dims) < 2:
        return rotation.to(codes.dtype)
    if len(codes) < 2 * len(dims):
        raise ValueError(f"independent_rotation needs at least {2 * len(dims)} codes to rotate {len(dims)} dims, got {len(codes)}")
    block = codes[:, dims].double().cpu().numpy()
    with warnings.catch_warnings():  # short of convergence the polar factor is still a rotation; the run goes on with it
        warnings.simplefilter("ignore", ConvergenceWarning)
        unmixing = FastICA(whiten="unit-variance", random_state=seed, max_iter=1000).fit(block).components_
    turn = polar(unmixing)[0]
    rows, columns = linear_sum_assignment(-np.abs(turn))  # component rows[i] goes to dim columns[i]
    placed = np.zeros_like(turn)
    placed[columns] = turn[rows] * np.sign(turn[rows, columns])[:, None]
    rotation[np.ix_(dims, dims)] = torch.from_numpy(placed)
    return rotation.to(codes.dtype)
