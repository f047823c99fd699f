"""FID, KID, Inception Score and precision/recall of the model's samples against the real data,
every N steps and at the end of fit, and once on the evaluated split under ``validate``/``test``."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from jsonargparse.typing import PositiveInt
from torch import Tensor, nn

from callbacks.periodic import EvaluationCallback
from metrics.fid import (
    SampleQuality,
    cache_path,
    default_cache_dir,
    file_digest,
    inception_weights_path,
    load_cached_state,
    load_inception,
    module_digest,
    save_cached_state,
    to_uint8_rgb,
)

#: Bumped when the meaning of a cached file changes (conversion of images, states stored, key).
CACHE_FORMAT = 3
#: The first real images of the subset, whose pixels (as the network receives them) are part of the
#: cache key: each run's first evaluation reads them again, so a change that alters every image
#: (the data source resolved differently, a transform's code, a renderer) gives another key.
CHECKED_IMAGES = 32
#: What the callback asks of a datamodule (``datamodules.BaseDataModule`` has them).
DATAMODULE_API = ("split_dataset", "subset_loader", "dataset_fingerprint")


class FIDEvaluation(EvaluationCallback):
    """Logs ``<prefix>/fid``, ``<prefix>/kid_mean``, ``<prefix>/kid_std``, ``<prefix>/precision``,
    ``<prefix>/recall``, ``<prefix>/is_mean`` and ``<prefix>/is_std`` of ``num_samples`` generated
    images against ``num_real_samples`` images of the datamodule's ``split``, to every logger and to
    ``trainer.callback_metrics`` (which a ``ModelCheckpoint`` can monitor). The Inception Score
    (torch-fidelity's, ``inception_score_splits`` splits) needs the Inception's logits: with a custom
    ``feature_extractor`` it is left out. Precision and recall (Kynkäänniemi et al. 2019, k = 3,
    torch-fidelity's) compare the first ``min(num_samples, kid_real_samples)`` fakes with as many of
    KID's real features, on the Inception's pool features (the paper used VGG-16's).

    Under ``validate`` and ``test`` the same scores are computed once, against the ``val`` or
    ``test`` split's real images (at most ``num_real_samples``; cached like the training split's),
    and logged as ``val/<prefix>/fid``, ``test/<prefix>/fid``, ...

    Samples come from ``pl_module.sample`` (the EMA generator when enabled), in batches, without
    gradients. The global RNGs are left as they were, so training after an evaluation goes on as
    without it. Under DDP each process generates and embeds its share and torchmetrics syncs the
    states; the samples are the same whatever the number of processes (batch ``j`` is drawn from
    seed ``(seed, j)``), so the scores are too.

    The real side (FID's feature sums, KID's first ``kid_real_samples`` features) is computed at the
    first evaluation and cached in ``cache_dir``, keyed by what the statistics summarise, as read at
    run time: the datamodule's ``dataset_fingerprint(split)`` (its class, the split and its size,
    the data shape and value range, and the settings that choose its data, its folders by their
    files' names, sizes and modification times), the number of real images, the pixels of the first
    ``CHECKED_IMAGES`` real images (so a transform's or renderer's code change shows), and the
    feature extractor (the weights file's SHA-256, or a custom module's class and parameters). Later evaluations, and later runs, only generate and
    embed fakes. Under DDP a cold cache is filled by every process embedding its share of the real
    images; process 0 alone computes the key, reads and writes the file (no shared file system
    needed) and then holds the real side, the others zeros.

    Args:
        inception_weights: Path of ``pt_inception-2015-12-05-6726825d.pth`` (torch-fidelity's
            Inception-v3, the standard FID network). Default: that file in torch.hub's checkpoint
            folder (``$TORCH_HOME/hub/checkpoints``), downloaded there at the start of fit when
            absent, as torchmetrics and torch-fidelity do; without a network, fit stops before its
            first step with the file's name, address and the folder to put it in.
        feature_extractor: Any module mapping ``uint8 [N, 3, H, W]`` to ``[N, d]`` features, instead
            of the Inception (scores are then not comparable to published FIDs).
        num_samples: Generated images per evaluation.
        num_real_samples: Real images, a seeded random subset of the split (all when it has fewer).
        kid_subsets: Random subsets KID averages over.
        kid_subset_size: Real and fake features per KID subset.
        kid_real_samples: Real features kept for KID (the first of the real subset; FID uses all).
        split: The datamodule's split the real images of fit's evaluations come from (read through
            ``split_dataset``, ``subset_loader`` and ``dataset_fingerprint``, as
            ``datamodules.BaseDataModule`` provides them); ``validate`` and ``test`` use the val and
            test splits.
        batch_size: Images generated and embedded at once (per process).
        seed: Seed of the samples, of the real subset and of KID's subsets.
        cache_dir: Where real statistics are cached; default ``$XDG_CACHE_HOME/idgan-lightning/fid``
            (``~/.cache/...``), shared by every run and config of the same data.
        every_n_steps: Evaluation cadence in training steps (generator updates); None: only at the end
            of fit (e.g. a FID-10k of the final model beside a cheaper FID during training).
        prefix: Section of the logged keys; tells several FIDEvaluation callbacks apart (e.g. a
            frequent FID-1k and a FID-50k every 50,000 steps).
        inception_score_splits: The Inception Score's mean and std are over this many splits of the
            samples (10 in the original code and torch-fidelity).
    """

    fast_dev_run_sizes = dict(num_samples=8, num_real_samples=8, kid_real_samples=8, kid_subsets=2, kid_subset_size=4,
                              batch_size=4, inception_score_splits=2)

    def __init__(
        self,
        inception_weights: str | None = None,
        feature_extractor: nn.Module | None = None,
        num_samples: PositiveInt = 10_000,
        num_real_samples: PositiveInt = 50_000,
        kid_subsets: PositiveInt = 100,
        kid_subset_size: PositiveInt = 1000,
        kid_real_samples: PositiveInt = 10_000,
        split: str = "train",
        batch_size: PositiveInt = 250,
        seed: int = 0,
        cache_dir: str | None = None,
        every_n_steps: PositiveInt | None = 5000,
        prefix: str = "fid",
        inception_score_splits: PositiveInt = 10,
    ) -> None:
        super().__init__(every_n_steps)
        if inception_weights is not None and feature_extractor is not None:
            raise ValueError(
                "FIDEvaluation takes inception_weights (the path of pt_inception-2015-12-05-6726825d.pth) or "
                "feature_extractor, not both"
            )
        if kid_subset_size > min(num_samples, kid_real_samples):
            raise ValueError(
                f"kid_subset_size={kid_subset_size} exceeds num_samples={num_samples} or "
                f"kid_real_samples={kid_real_samples}"
            )
        if inception_score_splits > num_samples:
            raise ValueError(f"inception_score_splits={inception_score_splits} exceeds num_samples={num_samples}")
        self.inception_weights = inception_weights
        self.feature_extractor, self.extractor_identity = feature_extractor, None
        if feature_extractor is not None:
            self.extractor_identity = f"module/sha256:{module_digest(feature_extractor)}"
        self.num_samples, self.num_real_samples = num_samples, num_real_samples
        self.kid_subsets, self.kid_subset_size, self.kid_real_samples = kid_subsets, kid_subset_size, kid_real_samples
        self.split, self.batch_size, self.seed = split, batch_size, seed
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.prefix, self.inception_score_splits = prefix, inception_score_splits
        self.quality: SampleQuality | None = None
        self._real_split: str | None = None  # the split whose real side ``quality`` holds
        self.last_results: dict[str, float] = {}

    # ------------------------------------------------------------------------------ hooks
    def check_inputs(self, pl_module: pl.LightningModule, datamodule: pl.LightningDataModule) -> list[str]:
        """The Inception weights (the named file, or the hub's, downloaded when absent), checked
        before the run starts (the CLI asks)."""
        try:
            self._load_inception()
        except (FileNotFoundError, ValueError) as error:
            return [str(error)]
        return []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage in _STAGE_SPLITS:  # fail at start-up, not at the first evaluation
            _split_size(trainer.datamodule, _STAGE_SPLITS[stage] or self.split)
            self._load_inception()

    @property
    def fit_split(self) -> str:
        """The split scored during fit: the configured ``split`` (FID compares G with the data the model trained on by default)."""
        return self.split

    def _load_inception(self) -> None:
        """The Inception from ``inception_weights``, or from (a download into) the torch hub cache."""
        if self.feature_extractor is None:
            path = inception_weights_path(self.inception_weights)
            self.feature_extractor = load_inception(path)
            self.extractor_identity = f"inception-v3-2048/sha256:{file_digest(path)}"

    def compute_scores(self, trainer: pl.Trainer, pl_module: pl.LightningModule, split: str) -> dict[str, float]:
        results = self.evaluate(pl_module, trainer.datamodule, split)
        return {f"{self.prefix}/{name}": value for name, value in results.items()}

    # --------------------------------------------------------------------------- evaluation
    def evaluate(
        self, pl_module: pl.LightningModule, datamodule: pl.LightningDataModule, split: str | None = None
    ) -> dict[str, float]:
        """``{"fid", "kid_mean", "kid_std", "precision", "recall"}`` and, with the Inception,
        ``{"is_mean", "is_std"}`` of the model's samples against ``split`` (default ``self.split``);
        call on every process."""
        split = split or self.split
        quality = self._quality(pl_module)
        if self._real_split != split:
            self._prepare_real(quality, datamodule, pl_module.device, split)
        quality.reset_fake()
        for j in _my_batches(self.num_samples, self.batch_size):
            size = min(self.batch_size, self.num_samples - j * self.batch_size)
            images = pl_module.sample(size, torch.Generator().manual_seed(_batch_seed(self.seed, j)))
            quality.update(to_uint8_rgb(images, pl_module.output_range), real=False)
        self.last_results = {name: value.item() for name, value in quality.compute().items()}
        return self.last_results

    def _quality(self, pl_module: pl.LightningModule) -> SampleQuality:
        if self.quality is None:
            self._load_inception()
            _, height, width = pl_module.data_shape
            self.quality = SampleQuality(
                self.feature_extractor, kid_subsets=self.kid_subsets, kid_subset_size=self.kid_subset_size,
                seed=self.seed, probe_shape=(3, height, width), inception_score_splits=self.inception_score_splits,
            )
        return self.quality.to(pl_module.device)

    def _prepare_real(
        self, quality: SampleQuality, datamodule: pl.LightningDataModule, device: torch.device, split: str
    ) -> None:
        """Load the real side of ``split`` from the cache (process 0), or embed its real images
        (every process its share), sync, and cache the result."""
        size = _split_size(datamodule, split)
        indices = torch.randperm(size, generator=torch.Generator().manual_seed(self.seed))
        indices = indices[: self.num_real_samples]
        if min(len(indices), self.kid_real_samples) < self.kid_subset_size:
            raise ValueError(
                f"the {split} split has {len(indices)} images, fewer than kid_subset_size={self.kid_subset_size}"
            )
        identity = self.cache_identity(datamodule, indices, split) if _rank() == 0 else None
        path = cache_path(self.cache_dir, identity) if identity is not None else None
        state = load_cached_state(path, identity) if _rank() == 0 else None
        if not _broadcast_from_zero(state is not None):
            state = self._embed_real(quality, datamodule, split, indices, device)
            if _rank() == 0:
                save_cached_state(path, identity, state)
        quality.load_real_state(state)
        self._real_split = split

    def _embed_real(self, quality, datamodule, split: str, indices: Tensor, device) -> dict[str, Tensor]:
        batches = _my_batches(len(indices), self.batch_size)
        start, stop = batches.start * self.batch_size, min(batches.stop * self.batch_size, len(indices))
        for x, _ in datamodule.subset_loader(split, indices[start:stop], self.batch_size, seed=self.seed):
            kid_count = max(0, self.kid_real_samples - start)
            quality.update(to_uint8_rgb(x.to(device), datamodule.value_range), real=True, kid_count=kid_count)
            start += len(x)
        return quality.real_state()

    def cache_identity(self, datamodule: pl.LightningDataModule, indices: Tensor, split: str | None = None) -> dict[str, Any]:
        """What the cached real statistics depend on (the cache file is named by its hash): the
        data as the datamodule identifies it, and what is read, so that other images never meet
        these statistics."""
        split = split or self.split
        return {
            "format": CACHE_FORMAT,
            "data": datamodule.dataset_fingerprint(split, ignore=self.cache_dir),
            "num_real_samples": len(indices),
            "kid_real_samples": min(len(indices), self.kid_real_samples),
            "seed": self.seed,
            "first_images": self._pixels_digest(datamodule, split, indices[:CHECKED_IMAGES]),
            "feature_extractor": self.extractor_identity,
        }

    def _pixels_digest(self, datamodule: pl.LightningDataModule, split: str, indices: Tensor) -> str:
        """SHA-256 of these real images as the network receives them (one batch, read in this process)."""
        digest = hashlib.sha256()
        with torch.random.fork_rng(devices=[]):  # a random transform would draw the same each time
            torch.manual_seed(self.seed)
            for x, _ in datamodule.subset_loader(split, indices, batch_size=len(indices), seed=self.seed, num_workers=0):
                digest.update(to_uint8_rgb(x, datamodule.value_range).contiguous().numpy().tobytes())
        return f"{len(indices)} images/sha256:{digest.hexdigest()}"


# ------------------------------------------------------------------------------------ helpers
#: The split each stage's evaluations read real images from (None: the callback's ``split``).
_STAGE_SPLITS = {"fit": None, "validate": "val", "test": "test"}


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _broadcast_from_zero(flag: bool) -> bool:
    if _world_size() == 1:
        return flag
    message = [flag]
    dist.broadcast_object_list(message, src=0)
    return message[0]


def _my_batches(total: int, batch_size: int) -> range:
    """This process's batches of ``total`` items: a contiguous block, so that gathering the
    processes' features in rank order gives the one-process order."""
    batches = math.ceil(total / batch_size)
    rank, world_size = _rank(), _world_size()
    return range(rank * batches // world_size, (rank + 1) * batches // world_size)


def _batch_seed(seed: int, batch: int) -> int:
    """Independent streams per (seed, batch), unlike ``seed + batch``."""
    return int(np.random.SeedSequence([seed, batch]).generate_state(1, np.uint64)[0] >> 1)


def _split_size(datamodule: pl.LightningDataModule | None, split: str) -> int:
    """The number of images of ``split``, after checking that the datamodule serves real images as
    the callback reads them."""
    if datamodule is None:
        raise ValueError("FIDEvaluation reads real images from a datamodule: fit with `datamodule=`, not dataloaders")
    missing = [name for name in DATAMODULE_API if not callable(getattr(datamodule, name, None))]
    if missing:
        raise TypeError(
            f"FIDEvaluation reads real images through the datamodule's {', '.join(DATAMODULE_API)}; "
            f"{type(datamodule).__name__} lacks {', '.join(missing)}: derive it from datamodules.BaseDataModule"
        )
    if getattr(datamodule, "value_range", None) is None:
        raise ValueError(
            f"FIDEvaluation needs image data with a value_range; {type(datamodule).__name__} has none (split={split!r})"
        )
    if callable(settings := getattr(datamodule, "data_settings", None)):
        settings()  # a datamodule that states none fails here, at start-up, not at the first evaluation
    return len(datamodule.split_dataset(split))
