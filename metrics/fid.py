"""FID, KID, Inception Score and precision/recall of generated images, on torchmetrics' metrics,
torch-fidelity's Inception and torch-fidelity's IS and precision/recall.

:class:`SampleQuality` runs the feature extractor once per batch, for the pool features and (the
Inception's) logits together, and feeds the features to torchmetrics'
:class:`~torchmetrics.image.fid.FrechetInceptionDistance` and
:class:`~torchmetrics.image.kid.KernelInceptionDistance` (which compute the statistics, the
Fréchet distance and the polynomial-kernel MMD). The Inception Score (Salimans et al. 2016) of the
fakes' logits and the precision and recall (Kynkäänniemi et al. 2019) of the fakes' features
against KID's real features are torch-fidelity's own functions (``isc_features_to_metric``,
``prc_features_to_metric``) with its defaults: they are the numbers torch-fidelity and the papers
using it report (torchmetrics' ``InceptionScore`` differs: other splits' shuffle, std with Bessel's
correction). The real-image side (FID's sums, KID's features, which precision/recall reuse) can be
exported and loaded (:meth:`SampleQuality.real_state`, :meth:`SampleQuality.load_real_state`),
which is what the on-disk cache of :mod:`callbacks.fid` stores.

Feature extractors receive ``uint8`` images ``[N, 3, H, W]`` at the data's resolution, the input
the Inception expects (it resizes to 299 itself): :func:`to_uint8_rgb` converts model outputs and
data batches to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from filelock import FileLock
from torch import Tensor, nn
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric
from torchmetrics.aggregation import CatMetric
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
from torchmetrics.image.kid import KernelInceptionDistance

INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_WEIGHTS_FILE}"
#: The start of the file's SHA-256, which torch.hub's naming convention puts in the file name.
INCEPTION_WEIGHTS_SHA256_PREFIX = "6726825d"
INCEPTION_FEATURES = 2048
#: The names the same file has in the torch hub cache: pytorch-fid's, then torch-fidelity's (torchmetrics').
_HUB_NAMES = (INCEPTION_WEIGHTS_FILE, URL_INCEPTION_V3.rsplit("/", 1)[-1])
_WHERE = (
    f"FID needs the Inception-v3 weights of the original TensorFlow FID converted to PyTorch, "
    f"'{INCEPTION_WEIGHTS_FILE}', published at {INCEPTION_WEIGHTS_URL} (torch-fidelity publishes the "
    f"same weights as {URL_INCEPTION_V3})"
)


def to_uint8_rgb(images: Tensor, value_range: tuple[float, float]) -> Tensor:
    """Images ``[N, 1 or 3, H, W]`` in ``value_range`` as ``uint8`` RGB (grayscale replicated).

    Rounds like ``torchvision.utils.save_image``, so the features are those of the saved images.

    Raises:
        ValueError: not a batch [N, 1 or 3, H, W].
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"FID needs images [N, 1 or 3, H, W], got {list(images.shape)}")
    low, high = value_range
    pixels = ((images.float() - low) * (255.0 / (high - low))).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1)


def hub_checkpoint_dir() -> Path:
    """torch.hub's checkpoint folder, ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``,
    by default ``~/.cache/torch/hub/checkpoints``), where every FID library keeps the Inception."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def inception_weights_path(path: str | Path | None = None) -> Path:
    """The Inception weights file to load: ``path`` when given; otherwise the standard file in
    :func:`hub_checkpoint_dir`, downloaded there from :data:`INCEPTION_WEIGHTS_URL` when absent, as
    torchmetrics, torch-fidelity and pytorch-fid do. The cached file is checked against the SHA-256
    prefix its name carries, on download and on every later use.

    Raises:
        FileNotFoundError: no file in the cache and the download failed (no network): the message
            names the file, its address and the folder to put it in.
        ValueError: the cached or downloaded file is not the published one (another SHA-256).
    """
    if path is not None:
        return Path(path).expanduser()
    folder = hub_checkpoint_dir()
    cached = next((folder / name for name in _HUB_NAMES if (folder / name).is_file()), None)
    if cached is None:
        folder.mkdir(parents=True, exist_ok=True)
        cached = folder / INCEPTION_WEIGHTS_FILE
        with FileLock(folder / f"{INCEPTION_WEIGHTS_FILE}.lock"):  # the processes of a node download once
            if not cached.is_file():
                _download(cached)
    digest = file_digest(cached)
    if not digest.startswith(INCEPTION_WEIGHTS_SHA256_PREFIX):
        raise ValueError(
            f"'{cached}' is damaged or not the published file: its SHA-256 is {digest[:16]}..., the file's "
            f"starts with {INCEPTION_WEIGHTS_SHA256_PREFIX}. Delete it to download it again, or replace it. {_WHERE}."
        )
    return cached


def _download(destination: Path) -> None:
    """torch.hub's download (a temporary file renamed into place, hash-checked), with its failures
    turned into one message each; ``from None``: urllib's chain would only bury it."""
    try:
        torch.hub.download_url_to_file(
            INCEPTION_WEIGHTS_URL, str(destination), hash_prefix=INCEPTION_WEIGHTS_SHA256_PREFIX,
        )
    except OSError as error:  # URLError, HTTPError, timeouts
        raise FileNotFoundError(
            f"Inception weights not found in torch.hub's cache and the download failed ({error}). {_WHERE}: "
            f"download that file and put it in {destination.parent} (the torch hub checkpoint folder; set "
            f"TORCH_HOME to use another), or pass its path as inception_weights."
        ) from None
    except RuntimeError as error:  # torch.hub: "invalid hash value"
        raise ValueError(
            f"the file downloaded from {INCEPTION_WEIGHTS_URL} is not the published one ({error}); nothing "
            f"was written to {destination.parent}. Try again, or download it yourself and put it there."
        ) from None


class InceptionV3(NoTrainInceptionV3):
    """torch-fidelity's Inception-v3 (torchmetrics' wrapper, as ``FrechetInceptionDistance`` builds
    it): ``forward`` gives the 2048 pool features (FID, KID, precision/recall),
    :meth:`features_and_logits` also the unbiased logits the Inception Score reads, from the same
    forward pass. ``antialias=False`` keeps torch-fidelity's TF1-compatible resize, the original FID's."""

    def __init__(self, weights_path: str) -> None:
        super().__init__(name="inception-v3-compat", features_list=[str(INCEPTION_FEATURES), "logits_unbiased"],
                         feature_extractor_weights_path=weights_path, antialias=False)

    def features_and_logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``([N, 2048], [N, 1008])`` of ``uint8`` images ``[N, 3, H, W]``."""
        features, logits = self._torch_fidelity_forward(images)
        return features.reshape(len(images), -1), logits.reshape(len(images), -1)

    @property
    def num_logits(self) -> int:
        """Classes of the Inception's logits (1008 for the TF FID weights)."""
        return self.fc.out_features


def load_inception(path: str | Path | None = None) -> InceptionV3:
    """torch-fidelity's Inception-v3 (2048 pool features and the logits) with the weights in
    ``path``, or, without one, the standard weights from the torch hub cache (see
    :func:`inception_weights_path`).

    Raises:
        FileNotFoundError: ``path`` does not exist, or there is no path, no cached file and no
            network; the message says which file is needed and where.
        ValueError: the file is not a state dict of this network (wrong keys or shapes, or not a
            PyTorch file), or the cached file's SHA-256 is not the published one's.
    """
    path = inception_weights_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights not found at '{path}'. {_WHERE}.")
    try:
        return InceptionV3(str(path))
    except (RuntimeError, TypeError, KeyError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"'{path}' is not the Inception weights file. {_WHERE}. Loading it failed: {err}") from err


def save_random_inception(path: str | Path, seed: int = 0) -> Path:
    """Write an Inception with random weights, in the format of the published file.

    For tests and benchmarks on machines without the real weights: :func:`load_inception` reads
    it through the same code path; the cost is the real one, and the features, though not the
    Inception's, are of order 1 and vary with the image, so FID and KID rank sample sets.

    The convolutions are He-initialised (Kaiming normal, fan-in, ReLU gain): PyTorch's default
    (variance ``1 / (3 fan_in)``) shrinks the signal about 6x per convolution + ReLU, and the
    batch norms in evaluation mode (running mean 0, variance 1) never rescale it, so after the
    network's depth the 2048 features were ~1e-8 and every FID and KID came out 0.
    """

    class _Unloaded(InceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # keep the random init
            return None

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    empty = path.with_suffix(".empty")
    torch.save({}, empty)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        network = _Unloaded(str(empty))
        for module in network.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    empty.unlink()
    torch.save(network.state_dict(), path)
    return path


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def module_digest(module: nn.Module) -> str:
    """SHA-256 over a module's class and state dict (names, shapes, dtypes and values)."""
    digest = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class _Precomputed(nn.Module):
    """The metrics' feature "extractor": :class:`SampleQuality` hands them features, not images."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


class SampleQuality(nn.Module):
    """FID, KID, Inception Score and precision/recall of fake against real images, with one feature
    pass per batch.

    ``update(images, real)`` embeds ``uint8`` RGB images (see :func:`to_uint8_rgb`);
    ``update_features`` takes features (and the fakes' logits) directly. Real-side states survive
    :meth:`reset_fake`. Under DDP every state syncs on :meth:`compute` (sums for FID, gathered
    features for KID, precision/recall and IS).

    The Inception Score needs class logits: it is computed when the feature extractor has
    ``features_and_logits`` (the Inception of :func:`load_inception`), and left out otherwise.
    Precision and recall compare the first ``min(fakes, KID's reals)`` fake features with as many of
    KID's real features (the real subset the cache holds): equal sets, as Kynkäänniemi et al. use,
    and no second real cache.

    Args:
        feature_extractor: ``uint8 [N, 3, H, W] -> [N, d]`` (e.g. :func:`load_inception`).
        num_features: ``d``; read from ``feature_extractor.num_features`` when it has one, else
            found with one forward pass of ``probe_shape``.
        kid_subsets: KID is the mean (and std) of the MMD over this many random subsets...
        kid_subset_size: ...of this many real and this many fake features each.
        seed: Seed of KID's subsets (drawn without touching the global RNG).
        probe_shape: Image shape ``(3, H, W)`` for finding ``num_features``.
        inception_score_splits: The Inception Score is the mean (and std) over this many splits of
            the fakes (torch-fidelity's and the original code's 10).
        prc_neighborhood: k of the k-nearest-neighbour balls of precision/recall (the paper's 3).
    """

    def __init__(
        self,
        feature_extractor: nn.Module,
        num_features: int | None = None,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        seed: int = 0,
        probe_shape: tuple[int, int, int] = (3, 299, 299),
        inception_score_splits: int = 10,
        prc_neighborhood: int = 3,
    ) -> None:
        super().__init__()
        self.feature_extractor = feature_extractor.eval().requires_grad_(False)
        self.has_logits = callable(getattr(feature_extractor, "features_and_logits", None))
        if num_features is None:
            num_features = getattr(feature_extractor, "num_features", None)
        if num_features is None:
            num_features = self.embed(torch.zeros(1, *probe_shape, dtype=torch.uint8)).shape[-1]
        self.num_features = int(num_features)
        self.seed, self.inception_score_splits, self.prc_neighborhood = seed, inception_score_splits, prc_neighborhood
        self.fid = FrechetInceptionDistance(feature=_Precomputed(self.num_features), reset_real_features=False)
        with warnings.catch_warnings():  # its memory warning: callers choose how many features KID gets
            warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer")
            self.kid = KernelInceptionDistance(
                feature=_Precomputed(self.num_features), subsets=kid_subsets, subset_size=kid_subset_size,
                reset_real_features=False,
            )
        self.fake_logits = CatMetric(nan_strategy="disable")  # IS is NaN for NaN samples, as FID

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """Features ``[N, d]`` of ``uint8`` images ``[N, 3, H, W]``."""
        return self.feature_extractor(images).reshape(len(images), -1)

    @torch.no_grad()
    def embed_with_logits(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Features ``[N, d]`` and, from the same forward pass, logits ``[N, classes]`` (None when
        the extractor gives none)."""
        if self.has_logits:
            return self.feature_extractor.features_and_logits(images)
        return self.embed(images), None

    def update(self, images: Tensor, real: bool, kid_count: int | None = None) -> None:
        """Add ``uint8`` RGB images to the real or fake side; the first ``kid_count`` also go to KID."""
        if real:
            self.update_features(self.embed(images), real, kid_count)
        else:
            features, logits = self.embed_with_logits(images)
            self.update_features(features, real=False, kid_count=kid_count, logits=logits)

    def update_features(self, features: Tensor, real: bool, kid_count: int | None = None,
                        logits: Tensor | None = None) -> None:
        """Add features ``[N, d]`` to the real or fake side (the fakes' ``logits`` to the Inception
        Score); the first ``kid_count`` also go to KID (and precision/recall)."""
        self.fid.update(features, real=real)
        kid_features = features if kid_count is None else features[:kid_count]
        if len(kid_features):
            self.kid.update(kid_features, real=real)
        if logits is not None and not real:
            self.fake_logits.update(logits.float())

    def compute(self) -> dict[str, Tensor]:
        """``{"fid", "kid_mean", "kid_std", "precision", "recall"}``, and ``"is_mean"``, ``"is_std"``
        when there are logits, over the states of every process."""
        self._one_tensor_per_list_state()
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(self.seed)  # the CPU RNG KID draws from; CUDA untouched
            kid_mean, kid_std = self.kid.compute()
        scores = {"fid": self.fid.compute(), "kid_mean": kid_mean, "kid_std": kid_std}
        with self.kid.sync_context():
            real, fake = torch.cat(self.kid.real_features), torch.cat(self.kid.fake_features)  # a part per process
            count = min(len(real), len(fake))
            prc = prc_features_to_metric(fake[:count], real[:count], prc_neighborhood=self.prc_neighborhood,
                                         save_cpu_ram=True, verbose=False)
        scores.update(precision=torch.tensor(prc["precision"]), recall=torch.tensor(prc["recall"]))
        if self.has_logits:
            logits = self.fake_logits.compute()
            inception_score = isc_features_to_metric(logits, splits=self.inception_score_splits)
            scores.update(is_mean=torch.tensor(inception_score["inception_score_mean"]),
                          is_std=torch.tensor(inception_score["inception_score_std"]))
        return scores

    def reset_fake(self) -> None:
        """Forget the fake side, keep the real one."""
        self.fid.reset()
        self.kid.reset()
        self.fake_logits.reset()

    def real_state(self) -> dict[str, Tensor]:
        """The real side, summed / gathered over every process, on the CPU."""
        self._one_tensor_per_list_state()
        with self.fid.sync_context(), self.kid.sync_context():
            return {
                "real_features_sum": self.fid.real_features_sum.cpu().clone(),
                "real_features_cov_sum": self.fid.real_features_cov_sum.cpu().clone(),
                "real_features_num_samples": self.fid.real_features_num_samples.cpu().clone(),
                "kid_real_features": torch.cat(
                    [f.reshape(-1, self.num_features) for f in self.kid.real_features]
                ).cpu(),
            }

    def load_real_state(self, state: dict[str, Tensor] | None) -> None:
        """Make ``state`` (from :meth:`real_state`) the real side of all processes together.

        Under DDP process 0 holds it and the others hold zeros (their ``state`` is ignored and may
        be None), so that the sum / gather of :meth:`compute` gives back exactly ``state``.

        Raises:
            ValueError: ``state`` None on process 0.
        """
        keep = not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
        if keep and state is None:
            raise ValueError("process 0 needs the real state to load")
        device = self.fid.real_features_sum.device
        for name in ("real_features_sum", "real_features_cov_sum", "real_features_num_samples"):
            current = getattr(self.fid, name)
            setattr(self.fid, name, state[name].to(device) if keep else torch.zeros_like(current))
        kid_features = state["kid_real_features"].to(device) if keep else self._no_features()
        self.kid.real_features = [kid_features]

    def _no_features(self, width: int | None = None) -> Tensor:
        return self.fid.real_features_sum.new_zeros(0, width or self.num_features, dtype=torch.float32)

    def _one_tensor_per_list_state(self) -> None:
        """Feature lists as one tensor each (maybe empty): torchmetrics gathers list states element
        by element, so every process must hold the same number of elements, of the same rank."""
        states = [(self.kid, "real_features", self.num_features), (self.kid, "fake_features", self.num_features)]
        if self.has_logits:
            states.append((self.fake_logits, "value", self.feature_extractor.num_logits))
        for metric, name, width in states:
            parts = getattr(metric, name)
            setattr(metric, name, [torch.cat([p.reshape(-1, width) for p in parts] or [self._no_features(width)])])


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/idgan-lightning/fid`` (``~/.cache/...``): shared by every run and config."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "idgan-lightning" / "fid"


def cache_path(cache_dir: str | Path, identity: dict) -> Path:
    """The file of the real statistics described by ``identity`` (a JSON-able dict)."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return Path(cache_dir).expanduser() / f"real-{hashlib.sha256(text.encode()).hexdigest()[:20]}.pt"


def save_cached_state(path: Path, identity: dict, state: dict[str, Tensor]) -> None:
    """Write atomically (a temporary file, then a rename): a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"identity": json.loads(json.dumps(identity, default=str)), "state": state}, temporary)
    os.replace(temporary, path)


def load_cached_state(path: Path, identity: dict) -> dict[str, Tensor] | None:
    """The state cached for ``identity``, or None when there is none (or the file is another's)."""
    if not path.is_file():
        return None
    cached = torch.load(path, map_location="cpu", weights_only=True)
    if cached.get("identity") != json.loads(json.dumps(identity, default=str)):
        return None
    return cached["state"]
