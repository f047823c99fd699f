"""InfoGAN (Chen et al. 2016) and InfoGAN-CR (Lin et al., ICML 2020; seed 001 eq. 2).

    InfoGAN:     min_{G,Q} max_D  L_adv(D, G) - λ L_info(G, Q)
    InfoGAN-CR:  min_{G,Q,H} max_D  L_adv(D, G) - λ L_info(G, Q) - α I(x1, x2; k)
    InfoGAN-SC:  min_{G,Q,E} max_D  L_adv(D, G) - λ L_info(G, Q) + α L_SC(E, G)   (seed 001 eq. 6)

G(c, z) takes codes c and noise z, all U[-1, 1]. D and Q share a spectrally normalised trunk; Q
is a Gaussian over c. InfoGAN-CR's CR discriminator H sees a pair of images (channel-concatenated)
built from one code dimension k and predicts k; G cooperates with H (both minimise the softmax
cross-entropy, which bounds -I(x1, x2; k)). The dSprites setup is the reference code's
(github.com/fjxmlzn/InfoGAN-CR): 5 codes + 5 noise dims, nets of its appendix, λ = 0.05, Adam
β1 0.5 with lr G 1e-3, D/Q and H 2e-3, batch 64, α = 0 for the first 288,000 iterations, then 2.

InfoGAN-SC puts IDGAN-SC's supervised-contrastive regulariser on the same networks: the third arm
of the IDGAN-SC paper's §3.1 ablation (table 2, "IDGAN-SC without β-VAE"), which continues, like
the other two, one InfoGAN pre-training (``warm_start``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
from jsonargparse.typing import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from lightning_modules.base import AdversarialModule
from lightning_modules.losses import (
    contrastive_regularization_loss,
    discriminator_loss,
    gaussian_nll,
    nonsaturating_generator_loss,
)
from lightning_modules.nets import (
    InfoGANCRGenerator,
    InfoGANCRTrunk,
    SpatialBroadcastDecoder,
    image_shape,
)
from lightning_modules.training.contrastive import ContrastiveHead, SeparationWatch, SupervisedContrastive
from lightning_modules.training.latents import (
    gaussian_posterior,
    pairs_differing_in,
    pairs_sharing,
    uniform_pairs_apart,
)
from lightning_modules.training.optim import OptimizerConfig
from lightning_modules.training.warm_start import WarmStart

Prior = Literal["uniform", "gaussian"]
Pairing = Literal["share", "differ"]


class Regularizer(NamedTuple):
    """A regulariser of G's InfoGAN loss (InfoGAN-CR's, InfoGAN-SC's) for one generator step."""

    #: Its logged values' prefix: ``train/<name>_weight``, ``train/<name>_loss``.
    name: str
    #: The network (an attribute) that minimises its loss together with G.
    head: str
    #: α at this step (0: neither the loss nor the head is used).
    weight: float
    #: Its loss (a scalar) and the values to log with it.
    loss: Callable[[], tuple[Tensor, dict[str, Tensor]]]


class InfoGANDiscriminator(nn.Module):
    """The shared D/Q network: InfoGAN-CR's trunk, a real/fake logit head (D) and a Gaussian head
    over the codes (Q), both spectrally normalised like the trunk.

    Args:
        channels: Image channels.
        code_dim: Size of the code c that Q infers.
        info_std: A fixed σ for Q's Gaussian (the reference code: 1.0); ``None`` learns a
            log-variance per code dimension.
    """

    def __init__(self, channels: int, code_dim: int, info_std: float | None = None, image_size: int = 64) -> None:
        super().__init__()
        self.trunk = InfoGANCRTrunk(channels, image_size)
        self.head = spectral_norm(nn.Linear(self.trunk.feature_dim, 1))
        self.info_head = spectral_norm(nn.Linear(self.trunk.feature_dim, code_dim if info_std else 2 * code_dim))
        self.info_log_var = None if info_std is None else 2 * math.log(info_std)

    def forward(self, images: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """D's logits [B] and Q's (mean, log-variance) [B, code_dim] of ``images``."""
        features = self.trunk(images)
        return self.head(features).squeeze(1), self.q_posterior(features)

    def q_posterior(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Q's Gaussian over c from trunk features [B, feature_dim]: mean and log-variance, each
        [B, code_dim] (the log-variance fixed by ``info_std`` when given)."""
        if self.info_log_var is None:
            return gaussian_posterior(self.info_head, features)
        mean = self.info_head(features)
        return mean, torch.full_like(mean, self.info_log_var)


class InfoGAN(WarmStart, AdversarialModule):
    """InfoGAN with continuous codes, on InfoGAN-CR's dSprites networks (64x64, [0, 1]).

    Args:
        code_dim: Size of the code c (the reference: 5).
        noise_dim: Size of the noise z (the reference: 5).
        prior: Of every dimension of (c, z): "uniform" U[-1, 1] (InfoGAN-CR's reference) or
            "gaussian" N(0, 1) (the IDGAN-SC paper's §3.1 ablation: "the generator follows a
            Gaussian prior").
        data_shape: Shape of one image: [channels, size, size], size 64 (the reference) or 32 (the
            small-scale protocol, configs/small/: G and D's trunk one stride-2 layer shorter, each step
            about 4x cheaper on a CPU).
        info_weight: λ, on Q's Gaussian negative log-likelihood in both the D/Q and the G loss (0.05).
        info_std: Fix Q's σ (the reference code: 1.0, so its info loss is a squared error); the
            default ``None`` learns Q's log-variance (InfoGAN's factored Gaussian).
        generator_network: G's architecture: "infogan_cr" (the reference's transposed
            convolutions) or "spatial_broadcast" (Watters et al. 2019: (c, z) tiled over the image
            with x/y coordinate channels, stride-1 3x3 convolutions of ``broadcast_width`` maps), as
            ``IDGANSC``'s option: a code that moves the sprite along x or y is one input per axis.
        broadcast_layers: The spatial broadcast G's hidden convolutions (Watters et al.: 4).
        broadcast_padding: The spatial broadcast G's padding: "valid" (Watters et al.) or "same".
        broadcast_width: The spatial broadcast G's feature maps (Watters et al.: 64).
        generator_optimizer: The reference: Adam, lr 1e-3, β1 0.5.
        discriminator_optimizer: D and Q (one network). The reference: Adam, lr 2e-3, β1 0.5.
        warm_start: A checkpoint of this network family (the ablation's InfoGAN pre-training,
            or any InfoGAN, InfoGAN-CR or InfoGAN-SC run) whose generator and D/Q network start
            this run; a regulariser's head starts fresh, so do the optimizers and the step count
            (see ``lightning_modules.training.warm_start``). Not needed to resume.
    """

    output_range = (0.0, 1.0)
    traversal_span = 1.0  # the reference's codes are U[-1, 1]; 2.0 (the bulk of N(0, 1)) under a Gaussian prior
    warm_start_networks = ("generator", "discriminator")
    warm_start_settings = (
        "code_dim", "noise_dim", "prior", "data_shape", "info_std",
        "generator_network", "broadcast_layers", "broadcast_padding", "broadcast_width",
    )
    warm_start_role = "InfoGAN generator and discriminator"
    warm_start_config = "configs/ablation_infogan_pretrain_dsprites.yaml"

    def __init__(
        self,
        code_dim: PositiveInt = 5,
        noise_dim: PositiveInt = 5,
        prior: Prior = "uniform",
        data_shape: tuple[PositiveInt, Literal[32, 64], Literal[32, 64]] = (1, 64, 64),
        info_weight: NonNegativeFloat = 0.05,
        info_std: PositiveFloat | None = None,
        generator_network: Literal["infogan_cr", "spatial_broadcast"] = "infogan_cr",
        broadcast_layers: PositiveInt = 4,
        broadcast_padding: Literal["valid", "same"] = "valid",
        broadcast_width: PositiveInt = 64,
        generator_optimizer: OptimizerConfig = OptimizerConfig(lr=1e-3, betas=(0.5, 0.999)),
        discriminator_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-3, betas=(0.5, 0.999)),
        warm_start: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.code_dim, self.noise_dim, self.latent_dim = code_dim, noise_dim, code_dim + noise_dim
        self.prior, self.warm_start = prior, warm_start
        if prior == "gaussian":
            self.traversal_span = 2.0
        self.info_weight = info_weight
        channels, size = image_shape(data_shape, type(self).__name__, sizes=(32, 64))
        self.data_shape = (channels, size, size)
        if generator_network == "spatial_broadcast":
            self.generator = SpatialBroadcastDecoder(
                self.latent_dim, size, channels, broadcast_width, broadcast_layers, broadcast_padding, activation="sigmoid"
            )
        else:
            self.generator = InfoGANCRGenerator(self.latent_dim, channels, activation="sigmoid", image_size=size)
        self.discriminator = InfoGANDiscriminator(channels, code_dim, info_std, size)
        self.optimized_networks = {"discriminator": discriminator_optimizer, "generator": generator_optimizer}

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        codes, fake = self.discriminator_step(batch)
        if self.generator_turn():
            self.generator_step(codes, fake)

    def discriminator_step(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Sample (c, z) ~ prior and x̃ = G(c, z) for the real batch; D and Q take one step on
        L_adv + λ L_info. Returns the codes c [B, code_dim] and the fakes x̃ (with G's graph) for
        the generator step."""
        real, _ = batch
        latent = self.sample_latent(len(real))
        codes = latent[:, : self.code_dim]
        fake = self.generator(latent)
        with self.optimize("discriminator") as step:  # D and Q
            real_logits, _ = self.discriminator(real)
            fake_logits, q_fake = self.discriminator(fake.detach())
            info_nll = gaussian_nll(codes, *q_fake)  # -L_info without the constant H(c)
            d_loss = discriminator_loss(real_logits, fake_logits) + self.info_weight * info_nll
            step(d_loss)
        self.log_discriminator(
            d_loss, real_logits, fake_logits, info_nll=info_nll, code_recovery_mse=(q_fake[0].detach() - codes).pow(2).mean()
        )
        return codes, fake

    def generator_step(self, codes: Tensor, fake: Tensor, regularizer: Regularizer | None = None) -> None:
        """G takes one step on its InfoGAN loss (:meth:`generator_loss`), plus α times a
        ``regularizer``'s loss once its α is positive, the regulariser's head minimising it with G
        (InfoGAN-CR's H, InfoGAN-SC's E); while α is 0 the head is neither used nor trained."""
        alpha = regularizer.weight if regularizer is not None else 0.0
        with self.optimize("generator", *([regularizer.head] if alpha > 0 else [])) as step:
            g_loss = self.generator_loss(codes, fake)
            regularizer_loss, diagnostics = regularizer.loss() if alpha > 0 else (None, {})
            step(g_loss + alpha * regularizer_loss if alpha > 0 else g_loss)
        if regularizer is not None:
            self.log(f"train/{regularizer.name}_weight", alpha)
        self.log("train/g_loss", g_loss, prog_bar=True)
        if alpha > 0:
            self.log_dict({f"train/{regularizer.name}_loss": regularizer_loss, **diagnostics}, prog_bar=True)

    def generator_loss(self, codes: Tensor, fake: Tensor) -> Tensor:
        """G's InfoGAN loss on the fakes of ``codes``: non-saturating L_adv + λ L_info (a scalar)."""
        fake_logits, q_fake = self.discriminator(fake)
        return nonsaturating_generator_loss(fake_logits) + self.info_weight * gaussian_nll(codes, *q_fake)

    # ------------------------------------------------------------------------ sampling API
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(c, z), every dimension from the prior: the codes first, then the noise."""
        return self.prior_sample((n, self.latent_dim), generator)

    def prior_sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
        """Values of ``shape`` drawn from the prior: U[-1, 1] or N(0, 1)."""
        device = self._generator_device(generator)
        if self.prior == "gaussian":
            return torch.randn(shape, generator=generator, device=device)
        return torch.rand(shape, generator=generator, device=device) * 2 - 1

    def latent_pairs(self, n: int, pairing: Pairing, gap: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
        """``n`` pairs of latents (c, z) labelled by a code dimension k ~ U{0..code_dim-1}, the noise z
        shared: returns k [n] and the two latents [n, latent_dim] of each pair. "share" (InfoGAN-CR's
        reference): code k identical, every other code drawn for each; "differ" (IDGAN-SC §2.2):
        one code vector, code k drawn twice. Values drawn twice are at least ``gap`` apart (uniform prior)."""
        device = self.device
        dims = torch.randint(self.code_dim, (n,), device=device)
        if pairing == "share":
            code_1, code_2 = pairs_sharing(*self.values_apart((n, self.code_dim), gap), dims)
        else:
            code_1, code_2 = pairs_differing_in(self.prior_sample((n, self.code_dim)), *self.values_apart((n,), gap), dims)
        noise = self.prior_sample((n, self.noise_dim))
        return dims, torch.cat([code_1, noise], 1), torch.cat([code_2, noise], 1)

    def values_apart(self, shape: tuple[int, ...], gap: float) -> tuple[Tensor, Tensor]:
        """Two draws of ``shape`` from the prior, at least ``gap`` apart element-wise under the
        uniform prior (independent under the Gaussian)."""
        if self.prior == "gaussian":
            return self.prior_sample(shape), self.prior_sample(shape)
        return uniform_pairs_apart(shape, gap, device=self.device)

    def traversal_dims(self) -> range:
        return range(self.code_dim)

    def encode(self, x: Tensor) -> Tensor:
        """Q's mean code of real images (the representation disentanglement metrics score)."""
        return self.discriminator(x)[1][0]


class InfoGANCR(InfoGAN):
    """InfoGAN with contrastive regularization: a CR discriminator H on image pairs.

    Args:
        pairing: How a pair labelled k is built (the noise z is always shared).
            "share" (the InfoGAN-CR reference code): code k is identical in both, every other
            code drawn independently, at least ``gap`` apart; "differ" (IDGAN-SC's text): one
            code vector, code k drawn twice (at least ``gap`` apart), the others identical.
        gap: Minimum distance between the two values of each code that differs within a pair
            (the reference's dSprites setting: 0).
        cr_weight: α once CR is on (the reference: 2.0).
        cr_start_step: Generator steps trained as plain InfoGAN before CR starts (the reference:
            288,000 of its 322,560). Before that H is neither used nor trained: the reference does
            train it, but re-initialises it (and its optimizer) when CR starts.
        cr_optimizer: The CR discriminator. The reference: Adam, lr 2e-3, β1 0.5.

    Raises:
        ValueError: ``gap`` outside [0, 2], or ``gap`` > 0 with ``prior='gaussian'``.
    """

    def __init__(
        self,
        pairing: Pairing = "share",
        gap: NonNegativeFloat = 0.0,
        cr_weight: NonNegativeFloat = 2.0,
        cr_start_step: NonNegativeInt = 288_000,
        cr_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-3, betas=(0.5, 0.999)),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if gap > 2.0:
            raise ValueError(f"gap must lie in [0, 2] (codes are U[-1, 1]), got {gap}")
        if gap > 0 and self.prior == "gaussian":
            raise ValueError(f"gap={gap} keeps uniform codes apart; with prior='gaussian' set gap: 0")
        self.pairing, self.gap, self.cr_weight, self.cr_start_step = pairing, gap, cr_weight, cr_start_step
        channels = self.data_shape[0]
        trunk = InfoGANCRTrunk(2 * channels, self.data_shape[-1])
        self.cr_discriminator = nn.Sequential(trunk, spectral_norm(nn.Linear(trunk.feature_dim, self.code_dim)))
        self.optimized_networks["cr_discriminator"] = cr_optimizer

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        codes, fake = self.discriminator_step(batch)
        if self.generator_turn():
            cr = Regularizer("cr", "cr_discriminator", self.current_cr_weight(), lambda: self.cr_diagnosed(len(fake)))
            self.generator_step(codes, fake, cr)

    def current_cr_weight(self) -> float:
        """α of this step: 0 until ``cr_start_step`` generator steps are done, then ``cr_weight``."""
        return self.cr_weight if self.global_step >= self.cr_start_step else 0.0

    def cr_loss(self, n: int) -> tuple[Tensor, Tensor]:
        """H's cross-entropy on ``n`` fresh pairs (a scalar, the bound on -I(x1, x2; k)) and H's
        accuracy at naming their code dimension k (a scalar in [0, 1], detached)."""
        dims, latent_1, latent_2 = self.cr_latent_pairs(n)
        logits = self.cr_discriminator(torch.cat([self.generator(latent_1), self.generator(latent_2)], 1))
        return contrastive_regularization_loss(logits, dims), (logits.detach().argmax(1) == dims).float().mean()

    def cr_diagnosed(self, n: int) -> tuple[Tensor, dict[str, Tensor]]:
        """:meth:`cr_loss` with H's accuracy as the value to log (``train/cr_accuracy``)."""
        loss, accuracy = self.cr_loss(n)
        return loss, {"train/cr_accuracy": accuracy}

    def cr_latent_pairs(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """``n`` pairs built by ``pairing`` and ``gap`` (see ``InfoGAN.latent_pairs``)."""
        return self.latent_pairs(n, self.pairing, self.gap)


class InfoGANSC(InfoGAN):
    """InfoGAN with IDGAN-SC's supervised-contrastive regulariser (seed 001 eq. 6) in place of
    InfoGAN-CR's: IDGAN-SC without β-VAE on the networks of InfoGAN and InfoGAN-CR, the third arm of
    the paper's §3.1 ablation (table 2).

    From ``contrastive.start_step`` on, each generator step builds m pairs as IDGAN-SC §2.2 does
    (c drawn once, c_s twice, z shared; labelled s); E maps each channel-concatenated pair to an
    L2-normalised r, and G and E minimise α L_SC (G's loss is the InfoGAN one plus it). Before that
    E is neither used nor trained. E is InfoGAN-CR's CR discriminator with ``representation_dim``
    outputs in place of k logits, centred over the pairs as IDGAN-SC's E (``ContrastiveHead``: eq. 6
    collapses an uncentred E), so the two regularised arms differ in their loss and that centring.

    Args:
        contrastive: The regulariser's settings
            (:class:`~lightning_modules.training.contrastive.SupervisedContrastive`): the paper's α 2,
            m 384, τ1 0.07, τ2 0.1, r 128, the mean over the anchors (``IDGANSC``'s reasons hold
            here too); E's optimizer as D's (Adam, lr 2e-3, β1 0.5); ``start_step`` 0 in the
            ablation's arm, which continues a pre-trained InfoGAN.
    """

    def __init__(
        self,
        contrastive: SupervisedContrastive = SupervisedContrastive(optimizer=OptimizerConfig(lr=2e-3, betas=(0.5, 0.999))),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.contrastive = contrastive
        trunk = InfoGANCRTrunk(2 * self.data_shape[0], self.data_shape[-1])
        size = contrastive.representation_dim
        self.contrastive_head = ContrastiveHead(nn.Sequential(trunk, spectral_norm(nn.Linear(trunk.feature_dim, size))), size)
        self.separation = SeparationWatch("InfoGAN-SC")
        self.optimized_networks["contrastive_head"] = contrastive.optimizer

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        codes, fake = self.discriminator_step(batch)
        if self.generator_turn():
            alpha = self.contrastive.weight_at(self.global_step)
            self.generator_step(codes, fake, Regularizer("sc", "contrastive_head", alpha, self.contrastive_loss))

    def contrastive_loss(self) -> tuple[Tensor, dict[str, Tensor]]:
        """L_SC (eq. 6, a scalar) over ``num_pairs`` fresh pairs built as IDGAN-SC §2.2 does, and
        E's separation of them (``SeparationWatch.metrics``: the values to log)."""
        dims, latent_1, latent_2 = self.latent_pairs(self.contrastive.num_pairs, "differ")
        pairs = torch.cat([self.generator(latent_1), self.generator(latent_2)], 1)
        representations = self.contrastive_head(pairs)
        return self.contrastive.loss(representations, dims), self.separation.metrics(representations, dims, self.global_step)
