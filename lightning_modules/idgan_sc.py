"""IDGAN-SC stage two (seed 001, eqs. 3-6, Algorithm 1).

    min_{G,Q,E} max_D  L_adv(D, G) - λ L_info(Q, G) + α L_SC(E, G)

G(z, c) draws c from the frozen stage-one β-VAE's posterior q(c|x) of the real batch (ID-GAN's
distillation) or, in the ablation "without β-VAE", from N(0, I). D is a DCGAN discriminator whose
trunk Q shares; E maps a channel-concatenated pair that differs in one code dimension s to r ∈ R^d,
and SupCon (eq. 6) pulls together the pairs that vary the same dimension. The paper writes
"- α L_SC", but L_SC is a loss: G and E minimise it.

E is ``contrastive.ContrastiveHead``: its r is centred over the m pairs before the L2
normalisation, without which eq. 6 with τ1 < τ2 collapses E (that module's docstring says why).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeFloat, PositiveInt
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor, nn

from lightning_modules.base import AdversarialModule, ImageShape
from lightning_modules.beta_vae import BetaVAE
from lightning_modules.losses import (
    discriminator_loss,
    gaussian_nll,
    kl_per_dimension,
    nonsaturating_generator_loss,
)
from lightning_modules.nets import (
    ConvDiscriminator,
    ConvGenerator,
    SpatialBroadcastDecoder,
    image_shape,
)
from lightning_modules.nets.dcgan import Normalization
from lightning_modules.training.contrastive import ContrastiveHead, SeparationWatch, SupervisedContrastive
from lightning_modules.training.latents import (
    gaussian_posterior,
    independent_rotation,
    pairs_differing_in,
    reparameterize,
)
from lightning_modules.training.optim import OptimizerConfig
from lightning_modules.training.pretrained_vae import FrozenVAE, PretrainedVAE

#: The stage-one β-VAE: only its encoder q(c|x) is kept (the codes, and Q with info_head="distiller").
DISTILLER = FrozenVAE(
    "distiller_checkpoint", attribute="distiller", latent_argument="code_dim", vae_class=BetaVAE, part=lambda vae: vae.encoder,
    role="stage-one β-VAE distiller", config="configs/beta_vae_dsprites.yaml",
)

#: ``code_rotation="ica"``: the training images its R is fitted on, and the dims it turns (those the
#: distiller uses; under 0.5 nats a dim is mostly noise, which ICA's whitening would scale up).
ROTATION_IMAGES, ROTATION_MIN_KL = 5_000, 0.5


class IDGANSC(PretrainedVAE, AdversarialModule, frozen_vae=DISTILLER):
    """Information-distillation GAN with a supervised-contrastive regulariser.

    Args:
        distiller_checkpoint: The stage-one β-VAE checkpoint (the default is where
            configs/beta_vae_dsprites.yaml writes it). Its weights are embedded in this model's
            checkpoints, so resuming stage two does not need the file.
        code_source: "distiller": c ~ q(c|x) of the real batch (IDGAN-SC); "prior": c ~ N(0, I)
            (the paper's ablation "without β-VAE").
        info_head: "trainable": a Q head on D's trunk (the paper); "distiller": the frozen β-VAE
            encoder is Q (ID-GAN's practice).
        code_dim: Size k of the code c; must equal the distiller's latent_dim.
        noise_dim: Size d of the noise z ~ N(0, I).
        data_shape: Shape of one image: [channels, size, size] with size 28, 32 or 64.
        width: Feature maps of the conv layers next to the image.
        generator_network: G's architecture: "dcgan" (transposed convolutions, the paper's) or
            "spatial_broadcast" (Watters et al. 2019: (c, z) tiled over the image with x/y
            coordinate channels, stride-1 3x3 convolutions of ``width`` maps; the stage-one decoder
            that learns axis-aligned position codes). Measured in the quick start (32 px, 1,000
            steps): a DCGAN G that follows the distiller's position codes draws grey striped
            blobs, a spatial broadcast G crisp white sprites whose traversal rows each move one
            factor (the notes in configs/quickstart.yaml).
        broadcast_layers: The spatial broadcast G's hidden convolutions (Watters et al.: 4).
        broadcast_padding: The spatial broadcast G's padding: "valid" (Watters et al.) or "same".
        generator_init: G's weights at step 0: "random" (the networks' own initialisation), or
            "distiller_decoder": the stage-one β-VAE's spatial broadcast decoder, read from
            ``distiller_checkpoint``, its first convolution's z columns zero, so that at step 0
            G(c, z) = sigmoid(decoder(c)), the β-VAE's mean image of c, for every z: the GAN starts
            from sprites at the code's place and size, and only has to sharpen them and use z. G
            must be built as the decoder (spatial broadcast, the same width, broadcast_layers,
            broadcast_padding; checked before the run starts) and the distiller's likelihood
            Bernoulli (its decoder's logits are what G's sigmoid takes). Copied at the first fit
            only: a resumed run's checkpoint replaces it. Measured in the quick start
            (configs/quickstart.yaml's header).
        code_rotation: The axes of the distilled code c: "none", the β-VAE's own (the paper), or
            "ica": c = R μ(x) (and R's rotation of the posterior's noise), with R the rotation
            among the dims the distiller uses (KL ≥ 0.5 nats) under which the codes of 5,000
            training images are most independent (FastICA:
            :func:`~lightning_modules.training.latents.independent_rotation`), fitted once when
            fit starts and kept in the checkpoint. The β-VAE's prior N(0, I) looks the same in
            every rotation, and the β-VAE's objective hardly prefers one where dims carry the same
            information, so two such dims can each code a mix of two factors (in the quick start,
            x and y turned 15-43° from their axes on seeds 0-4): R turns them back. Q
            (info_head="distiller"), the codes G is given, the KL that orders the traversal rows
            and the codes the metrics score are all R's; G started as the decoder
            (generator_init) draws decoder(Rᵀ c). Needs the distiller's codes
            (code_source="distiller" or info_head="distiller") and a datamodule with
            ``subset_loader``. Measured in the quick start (configs/quickstart.yaml's header).
        discriminator_normalization: D's normalization (batch norm, the DCGAN practice the paper
            follows; "spectral": Miyato et al. 2018).
        info_weight: λ (paper: 0.05).
        info_std: Fix Q's σ, so that λ L_info is a squared error between c and Q's mean (as
            InfoGAN's ``info_std``); ``None`` (the default) keeps Q's own variance. With
            info_head="distiller" Q's variance is the β-VAE posterior's, which is narrow
            (σ ~ 0.1 where a dimension carries ~2.5 nats) and narrower still on images unlike
            the data: its NLL started at ~11,000 nats in the quick start, λ L_info ~600x the
            adversarial loss, and G drew whatever the encoder reads as c (grey blocks) instead
            of sprites.
        contrastive: The supervised-contrastive regulariser: α, m, τ1, τ2, the size of r, the
            reduction over the anchors, E's optimizer and a start step
            (:class:`~lightning_modules.training.contrastive.SupervisedContrastive`; paper: α 2,
            m 384 on dSprites and 768 on CelebA, τ1 0.07, τ2 0.1, r 128, E's optimizer as D's).
        generator_optimizer: Paper: Adam, lr 1e-4 on dSprites, 2e-4 on CelebA.
        discriminator_optimizer: D and the Q head. Paper: lr 2e-4 on dSprites, 4e-4 on CelebA.
    """

    output_range = (0.0, 1.0)

    def __init__(
        self,
        distiller_checkpoint: str | None = "runs/beta_vae_dsprites/checkpoints/last.ckpt",
        code_source: Literal["distiller", "prior"] = "distiller",
        info_head: Literal["trainable", "distiller"] = "trainable",
        code_dim: PositiveInt = 10,
        noise_dim: PositiveInt = 5,
        data_shape: ImageShape = (1, 64, 64),
        width: PositiveInt = 32,
        generator_network: Literal["dcgan", "spatial_broadcast"] = "dcgan",
        broadcast_layers: PositiveInt = 4,
        broadcast_padding: Literal["valid", "same"] = "valid",
        generator_init: Literal["random", "distiller_decoder"] = "random",
        code_rotation: Literal["none", "ica"] = "none",
        discriminator_normalization: Normalization = "batch",
        info_weight: NonNegativeFloat = 0.05,
        info_std: PositiveFloat | None = None,
        contrastive: SupervisedContrastive = SupervisedContrastive(),
        generator_optimizer: OptimizerConfig = OptimizerConfig(lr=1e-4, betas=(0.5, 0.999)),
        discriminator_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.5, 0.999)),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.distiller_checkpoint, self.code_source, self.info_head_kind = distiller_checkpoint, code_source, info_head
        self.generator_init, self._decoder_copied = generator_init, False
        self.rotate_codes, self._rotation_fitted = code_rotation == "ica", False
        self.register_buffer("code_rotation", torch.eye(code_dim))  # R: c = R μ(x); the identity until fit sets it
        self.code_dim, self.noise_dim, self.latent_dim = code_dim, noise_dim, code_dim + noise_dim
        self.info_weight, self.contrastive = info_weight, contrastive
        self.info_log_var = None if info_std is None else 2 * math.log(info_std)
        channels, size = image_shape(data_shape, "IDGANSC")
        self.data_shape = (channels, size, size)

        if generator_network == "spatial_broadcast":
            self.generator = SpatialBroadcastDecoder(
                self.latent_dim, size, channels, width, broadcast_layers, broadcast_padding, activation="sigmoid"
            )
        else:
            self.generator = ConvGenerator(self.latent_dim, size, channels, width, activation="sigmoid")
        self.discriminator = ConvDiscriminator(size, channels, width, normalization=discriminator_normalization)
        self.contrastive_head = ContrastiveHead(
            ConvDiscriminator(size, 2 * channels, width, out_features=contrastive.representation_dim), contrastive.representation_dim
        )
        self.optimized_networks = {
            "discriminator": discriminator_optimizer,
            "generator": generator_optimizer,
            "contrastive_head": contrastive.optimizer,
        }
        if info_head == "trainable":
            self.info_head = nn.Linear(self.discriminator.feature_dim, 2 * code_dim)
            self.optimized_networks["info_head"] = discriminator_optimizer
        self.distiller: nn.Module | None = None
        self.separation = SeparationWatch("IDGAN-SC")

    # --------------------------------------------------------------------- Algorithm 1, stage two
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, _ = batch
        codes = self.sample_codes(real)
        fake = self.generator(torch.cat([codes, torch.randn(len(real), self.noise_dim, device=self.device)], 1))

        discriminator_networks = ("discriminator", "info_head") if self.info_head_kind == "trainable" else ("discriminator",)
        with self.optimize(*discriminator_networks) as step:
            real_logits = self.discriminator(real)
            fake_features = self.discriminator.features(fake.detach())
            d_loss = discriminator_loss(real_logits, self.discriminator.head(fake_features))
            if self.info_head_kind == "trainable":
                d_loss = d_loss + self.info_weight * gaussian_nll(codes, *self.q_posterior(fake.detach(), fake_features))
            step(d_loss)
        self.log("train/d_loss", d_loss, prog_bar=True)

        if not self.generator_turn():
            return
        contrastive_on = self.global_step >= self.contrastive.start_step  # before it E is neither used nor trained
        with self.optimize("generator", *["contrastive_head"] * contrastive_on) as step:
            fake_features = self.discriminator.features(fake)
            g_adv = nonsaturating_generator_loss(self.discriminator.head(fake_features))
            info_loss = gaussian_nll(codes, *self.q_posterior(fake, fake_features))  # -L_info, eq. 5
            g_loss = g_adv + self.info_weight * info_loss
            if contrastive_on:
                pair_dims, representations = self.contrastive_pairs(codes)
                sc_loss = self.contrastive.loss(representations, pair_dims)
                g_loss = g_loss + self.contrastive.weight * sc_loss
            step(g_loss)
        contrastive_logs = {
            "train/sc_loss": sc_loss, **self.separation.metrics(representations, pair_dims, self.global_step)
        } if contrastive_on else {}
        self.log_dict(
            {
                "train/g_loss": g_adv,
                "train/info_nll": info_loss,
                **contrastive_logs,
                "train/code_recovery_mse": F.mse_loss(self.q_posterior(fake.detach(), fake_features.detach())[0], codes),
            },
            prog_bar=True,
        )

    def sample_codes(self, real: Tensor) -> Tensor:
        """c ~ q(c|x) of the real batch from the frozen distiller, or c ~ N(0, I)."""
        if self.code_source == "prior":
            return torch.randn(len(real), self.code_dim, device=real.device)
        with torch.no_grad():
            # R after the draw: distilled_posterior's marginal variances would drop R's correlations
            return reparameterize(*gaussian_posterior(self.distiller, real)) @ self.code_rotation.T

    def q_posterior(self, images: Tensor, features: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Q's Gaussian (mean, log-variance) over the code behind ``images``: a head on D's trunk
        features (computed here unless given), or the frozen distiller's encoder."""
        if self.info_head_kind == "distiller":
            mean, log_var = self.distilled_posterior(images)
        else:
            mean, log_var = gaussian_posterior(self.info_head, self.discriminator.features(images) if features is None else features)
        return (mean, log_var) if self.info_log_var is None else (mean, torch.full_like(mean, self.info_log_var))

    def contrastive_pairs(self, codes: Tensor) -> tuple[Tensor, Tensor]:
        """§2.2: m pairs, each varying one dimension s of a code from the batch (the other
        dimensions and z shared), its two values of c_s taken from two different codes of the
        batch (so the pair always differs). Needs a batch of at least two. Returns the
        labels s and E's normalised representations r of the channel-concatenated pairs."""
        m, k, n = self.contrastive.num_pairs, self.code_dim, len(codes)
        device = codes.device
        dims = torch.randint(k, (m,), device=device)
        base = codes[torch.randint(n, (m,), device=device)]
        first_source = torch.randint(n, (m,), device=device)
        second_source = (first_source + torch.randint(1, n, (m,), device=device)) % n  # another code: a real change
        first, second = codes[first_source, dims], codes[second_source, dims]
        code_1, code_2 = pairs_differing_in(base, first, second, dims)
        noise = torch.randn(m, self.noise_dim, device=device)
        pair = torch.cat([self.generator(torch.cat([code_1, noise], 1)), self.generator(torch.cat([code_2, noise], 1))], 1)
        return dims, self.contrastive_head(pair)

    # ------------------------------------------------------------------------ sampling API
    def traversal_dims(self) -> range:
        return range(self.code_dim)

    def encode(self, x: Tensor) -> Tensor:
        """Q's mean code of real images (the representation disentanglement metrics score)."""
        return self.q_posterior(x)[0]

    def code_kl(self, x: Tensor) -> Tensor | None:
        """Per code dimension, KL(q(c_j|x) || N(0, 1)) in nats under the distiller the codes come
        from, averaged over ``x`` (about 0: a dimension the distiller left at the prior, which G
        gets as pure noise); None for codes drawn from the prior."""
        if self.code_source == "prior":
            return None
        return kl_per_dimension(*self.distilled_posterior(x))

    def distilled_posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The distiller's posterior of the code c = R μ(x) + R σ ε (``code_rotation``): its mean R μ
        [B, k] and each dim's marginal log-variance [B, k] (Σ_j R_ij² σ_j²; R's off-diagonal
        covariance is left out)."""
        mean, log_var = gaussian_posterior(self.distiller, x)
        rotation = self.code_rotation
        return mean @ rotation.T, (log_var.exp() @ rotation.square().T).log()

    # ------------------------------------------------------------------------- the distiller
    def needs_vae(self) -> bool:
        return self.code_source == "distiller" or self.info_head_kind == "distiller" or self.generator_init == "distiller_decoder"

    def check_inputs(self, datamodule, resuming: bool = False) -> list[str]:
        """Also, with ``generator_init: distiller_decoder``, that G is built as the distiller's decoder (unless ``resuming``: G comes from the
        checkpoint), and that ``code_rotation: ica`` has the distiller's codes and training images to fit R on."""
        problems = super().check_inputs(datamodule, resuming) + self.rotation_problems(datamodule)
        if self.generator_init == "distiller_decoder" and not resuming and self._vae_hparams is not None:
            problems += self.decoder_mismatches(self._vae_hparams)
        return problems

    def rotation_problems(self, datamodule) -> list[str]:
        """Why ``code_rotation: ica`` cannot run on ``datamodule``: one message, or none."""
        if not self.rotate_codes:
            return []
        if not self.needs_vae():
            return ["code_rotation=ica turns the distiller's codes, which this model does not use (code_source=prior, "
                    "info_head=trainable): set model.init_args.code_rotation=none, or model.init_args.code_source=distiller."]
        if not hasattr(datamodule, "subset_loader"):
            has = f"{type(datamodule).__name__} lacks" if datamodule is not None else "a run without a datamodule lacks"
            return [f"code_rotation=ica fits its rotation on training images read through the datamodule's subset_loader, which "
                    f"{has}: use a datamodules.BaseDataModule, or set model.init_args.code_rotation=none."]
        return []

    def setup(self, stage: str) -> None:
        """In fit, G starts as the distiller's decoder (``generator_init``), once, before the base copies G into its EMA."""
        # Setup runs before Lightning restores a checkpoint: a resumed run's G and EMA replace these weights.
        path = self.distiller_checkpoint
        if stage == "fit" and self.generator_init == "distiller_decoder" and not self._decoder_copied and path and Path(path).is_file():
            hparams, state_dict = self.read_vae_checkpoint(path)
            if not self.decoder_mismatches(hparams):
                decoder = {key.removeprefix("decoder."): value for key, value in state_dict.items() if key.startswith("decoder.")}
                weight = decoder["net.0.weight"]  # the first convolution's input channels: (c, x, y) there, (c, z, x, y) in G
                zero_noise = weight.new_zeros(len(weight), self.noise_dim, *weight.shape[2:])
                decoder["net.0.weight"] = torch.cat([weight[:, : self.code_dim], zero_noise, weight[:, self.code_dim :]], 1)
                self.generator.load_state_dict(decoder)  # the decoder's logits, G's sigmoid after them
                self._decoder_copied = True
        super().setup(stage)

    def fit_code_rotation(self) -> Tensor:
        """``code_rotation``'s R [k, k], from the distiller's codes of ``ROTATION_IMAGES`` training
        images (the same images on every process; process 0's R is everyone's), read through the
        datamodule's ``subset_loader``. Prints the dims it turns and by how much."""
        datamodule = self.trainer.datamodule
        size = len(datamodule.split_dataset("train"))
        indices = torch.randperm(size, generator=torch.Generator().manual_seed(0))[:ROTATION_IMAGES]
        with torch.no_grad():
            posteriors = [gaussian_posterior(self.distiller, x.to(self.device)) for x, _ in datamodule.subset_loader("train", indices, batch_size=500)]
        means, log_vars = (torch.cat(part) for part in zip(*posteriors))
        kl = kl_per_dimension(means, log_vars)
        dims = (kl >= ROTATION_MIN_KL).nonzero().flatten().tolist()
        rotation = self.trainer.strategy.broadcast(independent_rotation(means, dims), src=0)
        turn = math.degrees(math.acos(min(1.0, rotation.diagonal().min().item())))
        used = f"the distiller's dims {dims} (KL ≥ {ROTATION_MIN_KL} nats on {len(indices):,} training images)"
        rank_zero_info(f"code_rotation=ica: {used} turned by up to {turn:.0f}° to make their codes independent (FastICA)." if len(dims) > 1
                       else f"code_rotation=ica: fewer than 2 dims to turn, {used}; KL per dim {[round(v, 2) for v in kl.tolist()]}: "
                            f"the code keeps the β-VAE's axes.")
        return rotation

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A checkpoint written before ``code_rotation`` existed has the β-VAE's own axes: R = I."""
        checkpoint["state_dict"].setdefault("code_rotation", torch.eye(self.code_dim))
        super().on_load_checkpoint(checkpoint)

    def on_fit_start(self) -> None:
        """A fresh run fits the code's rotation R (``code_rotation``); G started as the distiller's
        decoder then draws decoder(Rᵀ c). A resumed run keeps its checkpoint's R.

        Raises:
            ValueError: (naming the settings) G was to start as the distiller's decoder and could
                not, or ``code_rotation: ica`` without the distiller's codes or a datamodule to read
                training images from.
        """
        super().on_fit_start()
        if self.generator_init == "distiller_decoder" and not self._decoder_copied and self._checkpoint_step is None:
            raise ValueError("\n".join(self.decoder_mismatches(self._vae_hparams)))
        if problems := self.rotation_problems(self.trainer.datamodule):
            raise ValueError(problems[0])
        if self.rotate_codes and not self._rotation_fitted and self._checkpoint_step is None:
            self.code_rotation.copy_(self.fit_code_rotation())
            rotation = self.code_rotation  # on G's device
            if self._decoder_copied:  # G (and its EMA copy) is still the decoder: its code columns turned with c
                copies = [self.generator] + ([self.sampling_network_ema.module] if self.sampling_network_ema is not None else [])
                for generator in copies:
                    weight = generator.net[0].weight.data
                    weight[:, : self.code_dim] = torch.einsum("ojhw,ij->oihw", weight[:, : self.code_dim], rotation)
            self._rotation_fitted = True

    def decoder_mismatches(self, hparams: dict[str, Any]) -> list[str]:
        """Why G cannot start as the decoder of the distiller with ``hparams`` (``generator_init: distiller_decoder``): one message, or none."""
        path = self.distiller_checkpoint
        theirs = dict(generator_network=hparams.get("decoder"), width=hparams.get("width"),
                      broadcast_layers=hparams.get("broadcast_layers"), broadcast_padding=hparams.get("broadcast_padding"))
        differ = {name: value for name, value in theirs.items() if value != self.hparams[name]}
        if hparams.get("likelihood", "bernoulli") != "bernoulli":
            return [f"generator_init=distiller_decoder: the distiller in '{path}' has a {hparams['likelihood']} likelihood, its decoder "
                    f"draws means, not the logits G's sigmoid takes: set model.init_args.generator_init=random."]
        if not differ:
            return []
        if theirs["generator_network"] != "spatial_broadcast":
            return [f"generator_init=distiller_decoder starts G as the distiller's spatial broadcast decoder, but the distiller in '{path}' "
                    f"has a {theirs['generator_network']} decoder: set model.init_args.generator_init=random, or train stage one with "
                    f"model.init_args.decoder=spatial_broadcast."]
        now = ", ".join(f"{name}={self.hparams[name]}" for name in differ)
        fix = ", ".join(f"model.init_args.{name}={value}" for name, value in differ.items())
        return [f"generator_init=distiller_decoder starts G as the distiller's decoder, which '{path}' built with "
                f"{', '.join(f'{name}={value}' for name, value in differ.items())}; G here has {now}: set {fix}, "
                f"or model.init_args.generator_init=random."]

