"""FID/KID: values against NumPy/SciPy, the Inception loading path, the real-statistics cache, the
callback on a tiny run, and DDP against one process."""

from __future__ import annotations

import copy
import csv
import email.message
import os
import re
import shutil
import urllib.error
import urllib.response
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from scipy import linalg

from callbacks import FIDEvaluation
from callbacks.fid import CHECKED_IMAGES
from PIL import Image

from datamodules import DSpritesDataModule, LSUNBedroomsDataModule
from datamodules.dsprites import NPZ_NAME
from datamodules import BaseDataModule
from datamodules.base import TensorPairDataset, files_fingerprint, pass_batch, uint8_to_range
import metrics.fid
from lightning_modules import DCGAN
from metrics import INCEPTION_WEIGHTS_FILE, INCEPTION_WEIGHTS_URL, SampleQuality, load_inception, save_random_inception, to_uint8_rgb
from metrics.fid import cache_path, file_digest
from tests.helpers import TINY, quiet_trainer, run_cli, write_fake_npz
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric
from tests.probes import TinyFeatures

# --------------------------------------------------------------------------- reference values


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance of two Gaussians fitted to feature sets, with SciPy's sqrtm."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def unbiased_poly_mmd(a: np.ndarray, b: np.ndarray) -> float:
    """MMD² with the cubic kernel (x.y / d + 1)³ (KID's), unbiased."""
    d, m = a.shape[1], len(a)
    k = lambda x, y: (x @ y.T / d + 1.0) ** 3  # noqa: E731
    kaa, kbb = k(a, a), k(b, b)
    within = (kaa.sum() - np.trace(kaa) + kbb.sum() - np.trace(kbb)) / (m * (m - 1))
    return float(within - 2 * k(a, b).mean())


def correlated_features(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) / np.sqrt(d) + rng.standard_normal(d)


def quality_of(real: np.ndarray, fake: np.ndarray, **kwargs) -> dict[str, float]:
    quality = SampleQuality(torch.nn.Identity(), num_features=real.shape[1], **{"kid_subsets": 2, **kwargs})
    quality.update_features(torch.from_numpy(real), real=True)
    quality.update_features(torch.from_numpy(fake), real=False)
    return {name: value.item() for name, value in quality.compute().items()}


# ------------------------------------------------------------------------------- FID and KID


def test_fid_matches_scipy_in_float64():
    real, fake = correlated_features(400, 24, seed=0), correlated_features(400, 24, seed=1)
    expected = frechet_distance(real, fake)
    assert expected > 1.0
    assert quality_of(real, fake, kid_subset_size=400)["fid"] == pytest.approx(expected, rel=1e-4)


def test_identical_sets_give_zero_and_a_mean_shift_gives_its_squared_norm():
    real = correlated_features(300, 16, seed=2)
    assert abs(quality_of(real, real, kid_subset_size=300)["fid"]) < 1e-8 * np.trace(np.cov(real, rowvar=False))
    shift = np.linspace(-1.0, 2.0, 16)
    assert quality_of(real, real + shift, kid_subset_size=300)["fid"] == pytest.approx((shift**2).sum(), rel=1e-6)


def test_kid_on_whole_sets_is_the_unbiased_mmd():
    real, fake = correlated_features(200, 8, seed=3), correlated_features(200, 8, seed=4)
    scores = quality_of(real, fake, kid_subsets=3, kid_subset_size=200)
    assert scores["kid_mean"] == pytest.approx(unbiased_poly_mmd(real, fake), rel=1e-6)
    assert scores["kid_std"] == pytest.approx(0.0, abs=1e-9)  # every subset is the whole set


def test_the_real_side_round_trips_through_its_state():
    real, fake = correlated_features(120, 8, seed=5), correlated_features(120, 8, seed=6)
    first = SampleQuality(torch.nn.Identity(), num_features=8, kid_subsets=5, kid_subset_size=50)
    first.update_features(torch.from_numpy(real), real=True, kid_count=80)
    second = SampleQuality(torch.nn.Identity(), num_features=8, kid_subsets=5, kid_subset_size=50)
    second.load_real_state(first.real_state())
    assert len(second.real_state()["kid_real_features"]) == 80
    for quality in (first, second):
        quality.update_features(torch.from_numpy(fake), real=False)
    assert first.compute() == second.compute()


def test_images_become_uint8_rgb_from_either_range():
    gray = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1, 1)
    pixels = to_uint8_rgb(gray, (-1.0, 1.0))
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 3, 1, 1)
    assert pixels[:, :, 0, 0].tolist() == [[0] * 3, [128] * 3, [255] * 3]
    assert torch.equal(to_uint8_rgb((gray + 1) / 2, (0.0, 1.0)), pixels)


# ----------------------------------------------------------------------------- the Inception


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory) -> Path:
    return save_random_inception(tmp_path_factory.mktemp("inception") / INCEPTION_WEIGHTS_FILE)


def test_the_inception_loads_from_a_file_in_the_published_format(inception_file):
    with torch.no_grad():
        features = load_inception(inception_file)(torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8))
    assert features.shape == (2, 2048) and features.isfinite().all()


@pytest.fixture(scope="module")
def sprite_features(inception_file) -> dict[str, torch.Tensor]:
    """Stand-in Inception features of dSprites images: a reference set, other sprites of the same
    distribution, and those other sprites lightly and heavily noised (pixel noise of std 0.1 and 0.5
    of the [0, 1] range)."""
    data = DSpritesDataModule(source="procedural")
    data.setup("fit")
    images, _ = data.train_set.__getitems__(torch.randperm(len(data.train_set), generator=torch.Generator().manual_seed(0))[:16].tolist())
    reference, other = images[:8], images[8:]
    noise = torch.randn(other.shape, generator=torch.Generator().manual_seed(1))
    sets = {"reference": reference, "light": other + 0.2 * noise, "heavy": other + 1.0 * noise}
    network = load_inception(inception_file)
    with torch.no_grad():
        return {name: network(to_uint8_rgb(x.clamp(-1, 1), data.value_range)).double() for name, x in sets.items()}


def test_the_stand_in_inception_gives_image_dependent_features_of_order_one(sprite_features):
    features = sprite_features["reference"]
    assert features.shape == (8, 2048)
    assert 0.1 < features.abs().mean() < 10
    distances = torch.cdist(features, features)[~torch.eye(8, dtype=torch.bool)]
    assert distances.min() > 0.5  # every two sprites are told apart, at the features' own scale


def test_fid_and_kid_rank_noisier_samples_worse(sprite_features):
    def scores(fake: str) -> dict[str, float]:
        return quality_of(sprite_features["reference"].numpy(), sprite_features[fake].numpy(), kid_subsets=5, kid_subset_size=6)

    same, light, heavy = (scores(name) for name in ("reference", "light", "heavy"))  # ~6 s each (2048-d eigvals)
    assert abs(same["fid"]) < 1e-4 * light["fid"]
    assert abs(same["kid_mean"]) < 0.05 * heavy["kid_mean"]  # KID of 6-subsets: 0 up to its sampling noise
    assert same["fid"] < light["fid"] < heavy["fid"] and heavy["fid"] > 5 * light["fid"]
    assert same["kid_mean"] < light["kid_mean"] < heavy["kid_mean"]


def test_one_forward_pass_gives_torch_fidelitys_pool_features_and_logits(inception_file):
    """The features (FID, KID, precision/recall) and the unbiased logits (Inception Score) of one
    pass are those torch-fidelity's own Inception gives for the same weights and images."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(inception_file))
    with torch.no_grad():
        expected_features, expected_logits = theirs.eval()(images)
        features, logits = SampleQuality(load_inception(inception_file), num_features=2048).embed_with_logits(images)
    assert logits.shape == (2, 1008) and logits.std() > 0.1
    torch.testing.assert_close(features, expected_features, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(logits, expected_logits, rtol=1e-4, atol=1e-5)


class LogitsOf(torch.nn.Module):
    """A feature extractor with logits (as the Inception): features are the input, logits a fixed
    projection of it."""

    def __init__(self, num_features: int, classes: int = 12) -> None:
        super().__init__()
        self.projection = torch.randn(num_features, classes, generator=torch.Generator().manual_seed(3))
        self.num_logits = classes

    def forward(self, x):
        return x

    def features_and_logits(self, x):
        return x, 3 * x @ self.projection


def test_inception_score_and_precision_recall_are_torch_fidelitys_on_the_same_features():
    """torch-fidelity's IS (its splits, shuffle and seed; std without Bessel's correction) of the
    fakes' logits, and its precision/recall (k = 3) of the fakes against KID's reals, fed in
    batches that do not divide the sets."""
    real, fake = correlated_features(50, 8, seed=0), correlated_features(50, 8, seed=1) * 1.3
    real, fake = torch.from_numpy(real).float(), torch.from_numpy(fake).float()
    extractor = LogitsOf(8)
    quality = SampleQuality(extractor, num_features=8, kid_subsets=2, kid_subset_size=20, inception_score_splits=5)
    for batch in real.split(15):
        quality.update(batch, real=True)
    for batch in fake.split(15):
        quality.update(batch, real=False)
    ours = {name: value.item() for name, value in quality.compute().items()}
    inception_score = isc_features_to_metric(extractor.features_and_logits(fake)[1], splits=5)
    prc = prc_features_to_metric(fake, real, verbose=False)
    assert 1.5 < inception_score["inception_score_mean"] and 0 < prc["precision"] < 1 and 0 < prc["recall"] < 1  # not trivial
    assert ours["is_mean"] == pytest.approx(inception_score["inception_score_mean"], rel=1e-5)
    assert ours["is_std"] == pytest.approx(inception_score["inception_score_std"], rel=1e-4)
    assert (ours["precision"], ours["recall"]) == (prc["precision"], prc["recall"])


def test_precision_recall_compare_equal_numbers_of_fakes_and_kids_reals():
    """KID's real subset (what the cache keeps) serves precision/recall: the first min(fakes, reals)
    of each, so a fake set larger than the real subset is cut to it, not compared unequally."""
    real, fake = correlated_features(40, 8, seed=0), correlated_features(60, 8, seed=1)
    quality = SampleQuality(torch.nn.Identity(), num_features=8, kid_subsets=2, kid_subset_size=20)
    quality.update_features(torch.from_numpy(real).float(), real=True, kid_count=30)
    quality.update_features(torch.from_numpy(fake).float(), real=False)
    scores = quality.compute()
    expected = prc_features_to_metric(torch.from_numpy(fake[:30]).float(), torch.from_numpy(real[:30]).float(), verbose=False)
    assert (scores["precision"].item(), scores["recall"].item()) == (expected["precision"], expected["recall"])
    assert "is_mean" not in scores  # a feature extractor without logits: no Inception Score


# --------------------------------------------- the Inception's weights from the torch hub cache


class WeightsServer:
    """Stands in for the network under ``torch.hub.download_url_to_file`` (its ``urlopen``), so that
    torch.hub's own download runs (temporary file, SHA-256 check, rename into place): serves the bytes
    of ``file``, or raises ``error``; records the addresses asked for."""

    def __init__(self, file: Path | None = None, error: Exception | None = None) -> None:
        self.file, self.error, self.requests = file, error, []

    def __call__(self, request, *args, **kwargs):
        self.requests.append(request.full_url)
        if self.error is not None:
            raise self.error
        return urllib.response.addinfourl(open(self.file, "rb"), email.message.Message(), request.full_url)


@pytest.fixture
def hub(tmp_path, monkeypatch, inception_file) -> Path:
    """``$TORCH_HOME`` in ``tmp_path``, whose hub checkpoint folder is returned; the stand-in file
    plays the published one (its SHA-256 prefix is the expected one); no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(metrics.fid, "INCEPTION_WEIGHTS_SHA256_PREFIX", file_digest(inception_file)[:8])
    monkeypatch.setattr(torch.hub, "urlopen", WeightsServer(error=AssertionError("no network in tests")))
    return tmp_path / "torch" / "hub" / "checkpoints"


def serve(monkeypatch, server: WeightsServer) -> WeightsServer:
    monkeypatch.setattr(torch.hub, "urlopen", server)
    return server


def loaded_weights(callback: FIDEvaluation) -> torch.Tensor:
    return callback.feature_extractor.state_dict()["Conv2d_1a_3x3.conv.weight"]


def file_weights(path: Path) -> torch.Tensor:
    return torch.load(path, weights_only=True)["Conv2d_1a_3x3.conv.weight"]


def fit_start(callback: FIDEvaluation) -> None:
    """What the trainer calls before the first step."""
    callback.setup(SimpleNamespace(datamodule=TinyImages(), fast_dev_run=False), tiny_dcgan(), "fit")


def test_without_a_path_the_weights_are_downloaded_into_torch_homes_hub_cache(hub, monkeypatch, inception_file):
    server = serve(monkeypatch, WeightsServer(inception_file))
    callback = tiny_evaluation(hub.parent, feature_extractor=None)
    assert callback.feature_extractor is None  # nothing fetched when the callback is built
    fit_start(callback)
    assert server.requests == [INCEPTION_WEIGHTS_URL]
    assert sorted(p.name for p in hub.iterdir() if not p.name.endswith(".lock")) == [INCEPTION_WEIGHTS_FILE]
    assert file_digest(hub / INCEPTION_WEIGHTS_FILE) == file_digest(inception_file)
    assert torch.equal(loaded_weights(callback), file_weights(inception_file))
    assert callback.extractor_identity.endswith(file_digest(inception_file))
    fit_start(tiny_evaluation(hub.parent, feature_extractor=None))  # a later run: found in the cache
    assert load_inception() is not None and server.requests == [INCEPTION_WEIGHTS_URL]


@pytest.mark.parametrize("name", [INCEPTION_WEIGHTS_FILE, URL_INCEPTION_V3.rsplit("/", 1)[-1]])
def test_weights_in_the_hub_cache_are_used_without_a_download(name, hub, inception_file):
    # pytorch-fid's name, or torch-fidelity's (what torchmetrics' own FID downloads)
    hub.mkdir(parents=True)
    shutil.copy(inception_file, hub / name)
    callback = tiny_evaluation(hub.parent, feature_extractor=None)
    fit_start(callback)  # the server of the fixture fails the test if asked
    assert torch.equal(loaded_weights(callback), file_weights(inception_file))
    assert torch.hub.urlopen.requests == []


def test_an_explicit_path_wins_over_the_hub_cache(hub, tmp_path, inception_file):
    hub.mkdir(parents=True)
    shutil.copy(inception_file, hub / INCEPTION_WEIGHTS_FILE)
    other = save_random_inception(tmp_path / "mine" / "inception.pth", seed=1)
    callback = tiny_evaluation(hub.parent, feature_extractor=None, inception_weights=str(other))
    fit_start(callback)
    assert torch.equal(loaded_weights(callback), file_weights(other))
    assert not torch.equal(file_weights(other), file_weights(inception_file))
    assert callback.extractor_identity.endswith(file_digest(other)) and torch.hub.urlopen.requests == []


def test_a_damaged_file_in_the_hub_cache_is_one_clear_error(hub, inception_file):
    hub.mkdir(parents=True)
    (hub / INCEPTION_WEIGHTS_FILE).write_bytes(inception_file.read_bytes()[:100_000])  # a cut-off copy
    with pytest.raises(ValueError, match=rf"'{re.escape(str(hub / INCEPTION_WEIGHTS_FILE))}' is damaged or not the published file.*Delete it"):
        fit_start(tiny_evaluation(hub.parent, feature_extractor=None))


def test_a_download_of_other_bytes_is_one_clear_error_and_leaves_nothing(hub, monkeypatch, tmp_path):
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(b"an error page, not weights")
    serve(monkeypatch, WeightsServer(wrong))
    with pytest.raises(ValueError, match=rf"downloaded from {re.escape(INCEPTION_WEIGHTS_URL)} is not the published one") as error:
        load_inception()
    assert error.value.__cause__ is None and error.value.__suppress_context__
    assert [p.name for p in hub.iterdir() if not p.name.endswith(".lock")] == []


class CountSteps(pl.Callback):
    steps = 0

    def on_train_batch_start(self, *args) -> None:
        self.steps += 1


def test_without_a_network_fit_stops_before_its_first_step_naming_file_address_and_folder(hub, monkeypatch, tmp_path):
    serve(monkeypatch, WeightsServer(error=urllib.error.URLError("[Errno -3] Temporary failure in name resolution")))
    steps = CountSteps()
    trainer = quiet_trainer(max_steps=2, callbacks=[steps, tiny_evaluation(tmp_path / "cache", feature_extractor=None)])
    with pytest.raises(FileNotFoundError) as error:
        trainer.fit(tiny_dcgan(), TinyImages())
    message = str(error.value)
    for part in (INCEPTION_WEIGHTS_FILE, INCEPTION_WEIGHTS_URL, str(hub), "Temporary failure in name resolution", "inception_weights"):
        assert part in message
    assert error.value.__cause__ is None and error.value.__suppress_context__  # one message, no urllib chain
    assert steps.steps == 0 and trainer.global_step == 0
    assert [p.name for p in hub.iterdir() if not p.name.endswith(".lock")] == []


def test_a_missing_weights_file_says_which_file_and_where(tmp_path):
    """Found by the CLI's start-up checks (check_inputs), not while the config is parsed, where the
    parser buried the message (see test_bad_input.py)."""
    (problem,) = FIDEvaluation(inception_weights=str(tmp_path / "nowhere.pth")).check_inputs(None, None)
    assert INCEPTION_WEIGHTS_FILE in problem and INCEPTION_WEIGHTS_URL in problem


def test_a_wrong_weights_file_says_which_file_and_where(tmp_path, inception_file):
    wrong_keys = tmp_path / "keys.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong_keys)
    state = torch.load(inception_file, weights_only=True)
    state["fc.weight"] = state["fc.weight"][:10]
    wrong_shapes = tmp_path / "shapes.pth"
    torch.save(state, wrong_shapes)
    not_torch = tmp_path / "text.pth"
    not_torch.write_text("not weights")
    for path in (wrong_keys, wrong_shapes, not_torch):
        with pytest.raises(ValueError, match=INCEPTION_WEIGHTS_FILE) as error:
            load_inception(path)
        assert INCEPTION_WEIGHTS_URL in str(error.value)


# ------------------------------------------------------------------ the callback and its cache


class CountingImages(TensorPairDataset):
    """uint8 images decoded per batch; counts the batches and images read."""

    reads = images_read = 0

    def __getitems__(self, indices):
        self.reads += 1
        self.images_read += len(indices)
        return super().__getitems__(indices)


class TinyImages(BaseDataModule):
    """Random 28 px grayscale images as a datamodule would serve them (a ``train_set`` whose
    ``transform`` maps uint8 to ``value_range``)."""

    def __init__(self, n: int = 48, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.n, self.data_shape = n, (1, 28, 28)
        images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
        self.train_set = CountingImages(images, torch.zeros(n, dtype=torch.long), partial(uint8_to_range, value_range=self.value_range))

    def data_settings(self) -> dict:
        return {"n": self.n}

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.train_set, batch_size=8, shuffle=True, drop_last=True, collate_fn=pass_batch)


def tiny_evaluation(cache_dir: Path, **kwargs) -> FIDEvaluation:
    settings = dict(feature_extractor=TinyFeatures(), num_samples=32, num_real_samples=40, kid_subsets=4, kid_subset_size=16, kid_real_samples=24, batch_size=16)
    return FIDEvaluation(cache_dir=str(cache_dir), **{**settings, **kwargs})


def tiny_dcgan(**kwargs) -> DCGAN:
    torch.manual_seed(0)
    return DCGAN(data_shape=(1, 28, 28), width=4, latent_dim=5, **kwargs)


def test_real_statistics_are_cached_and_reused_until_the_transform_changes(tmp_path):
    model, data = tiny_dcgan(), TinyImages()
    rng = torch.get_rng_state()
    first = tiny_evaluation(tmp_path).evaluate(model, data)
    assert torch.equal(torch.get_rng_state(), rng)  # training after an evaluation is not perturbed
    reads, images_read = data.train_set.reads, data.train_set.images_read
    # 40 real images in batches of 16, and the first CHECKED_IMAGES once more, in one batch, for the key
    assert (reads, images_read) == (3 + 1, 40 + CHECKED_IMAGES)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    again = tiny_evaluation(tmp_path)  # a later run: nothing in memory, the file on disk
    assert again.evaluate(model, data) == first
    assert again.evaluate(model, data) == first
    # no pass over real data: only the key's images, once per run
    assert (data.train_set.reads, data.train_set.images_read) == (reads + 1, images_read + CHECKED_IMAGES)
    data.train_set.transform = partial(uint8_to_range, value_range=(0.0, 1.0))
    assert tiny_evaluation(tmp_path).evaluate(model, data) != first
    assert data.train_set.reads == 2 * reads + 1 and len(list(tmp_path.glob("*.pt"))) == 2


def test_other_data_or_features_get_other_cache_files(tmp_path):
    model = tiny_dcgan()
    tiny_evaluation(tmp_path).evaluate(model, TinyImages(seed=0))
    tiny_evaluation(tmp_path).evaluate(model, TinyImages(seed=1))
    tiny_evaluation(tmp_path, feature_extractor=TinyFeatures(seed=1)).evaluate(model, TinyImages(seed=0))
    tiny_evaluation(tmp_path, num_real_samples=32).evaluate(model, TinyImages(seed=0))
    assert len(list(tmp_path.glob("*.pt"))) == 4


# ------------------------------------------- the cache follows the data read, not the config


def write_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` random 16 px PNGs, as an image-folder dataset (LSUN's layout) holds them."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:04d}.png" for i in range(count)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    return paths


class ImageFolder:
    """An evaluation against the images under ``root`` (LSUNBedroomsDataModule); says whether it
    found the real statistics in the cache or embedded the real images."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    def evaluate(self, root: Path) -> str:
        data = LSUNBedroomsDataModule(root=str(root), image_size=16, val_size=0)
        callback = tiny_evaluation(self.cache_dir)
        sizes = []
        callback.feature_extractor.register_forward_pre_hook(lambda module, inputs: sizes.append(inputs[0].shape[-1]))
        callback.evaluate(tiny_dcgan(), data)
        return "embedded" if 16 in sizes else "cached"  # real images are 16 px, the model's 28 px

    @property
    def files(self) -> int:
        return len(list(self.cache_dir.glob("*.pt")))


def test_changes_to_the_files_under_root_give_another_key(tmp_path):
    root, evaluation = tmp_path / "bedroom", ImageFolder(tmp_path / "cache")
    paths = write_images(root, 44)
    assert [evaluation.evaluate(root), evaluation.evaluate(root)] == ["embedded", "cached"]
    # the last file rewritten with other pixels (it is not among the first real images; same size)
    last = sorted(paths, key=lambda p: p.stat().st_size)[0]
    before = last.stat()
    pixels = np.asarray(Image.open(last)).copy()
    Image.fromarray(255 - pixels).save(last)
    os.utime(last, ns=(before.st_atime_ns, before.st_mtime_ns + 1000))
    assert evaluation.evaluate(root) == "embedded" and evaluation.files == 2
    write_images(root / "more", 1, seed=1)  # a file added (in a sub-folder, as LSUN's reader finds it)
    assert evaluation.evaluate(root) == "embedded" and evaluation.files == 3
    (root / "more" / "0000.png").unlink()  # removed again: the first key's data once more
    paths[3].unlink()  # and one file removed
    assert evaluation.evaluate(root) == "embedded" and evaluation.files == 4
    paths[5].rename(root / "renamed.png")
    assert evaluation.evaluate(root) == "embedded" and evaluation.files == 5
    assert evaluation.evaluate(root) == "cached" and evaluation.files == 5


def test_the_same_files_in_another_folder_share_the_statistics_and_a_plain_copy_gets_its_own(tmp_path):
    evaluation = ImageFolder(tmp_path / "cache")
    write_images(tmp_path / "here", 44)
    assert evaluation.evaluate(tmp_path / "here") == "embedded"
    shutil.copytree(tmp_path / "here", tmp_path / "there")  # copy2: sizes and modification times kept
    assert evaluation.evaluate(tmp_path / "there") == "cached" and evaluation.files == 1
    shutil.copytree(tmp_path / "here", tmp_path / "plain", copy_function=shutil.copyfile)  # new times
    assert evaluation.evaluate(tmp_path / "plain") == "embedded" and evaluation.files == 2


def test_a_cache_folder_inside_the_data_folder_does_not_change_the_key(tmp_path):
    root = tmp_path / "bedroom"
    write_images(root, 44)
    evaluation = ImageFolder(root / ".fid-cache")
    assert [evaluation.evaluate(root), evaluation.evaluate(root)] == ["embedded", "cached"]


def test_the_data_source_resolved_at_run_time_is_part_of_the_key(tmp_path):
    # dSprites' source "auto": procedural while the npz is absent, the npz once it is there
    root, model = tmp_path / "dsprites", tiny_dcgan()
    evaluation = lambda: tiny_evaluation(tmp_path / "cache").evaluate(model, DSpritesDataModule(root=str(root), val_size=8))  # noqa: E731
    procedural = evaluation()
    classes = DSpritesDataModule(source="procedural").ground_truth.index_to_factors(torch.arange(64)).numpy()
    write_fake_npz(root / NPZ_NAME, classes)
    from_npz = evaluation()
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2 and from_npz != procedural
    assert evaluation() == from_npz and len(list((tmp_path / "cache").glob("*.pt"))) == 2


class Brighten(torch.nn.Module):
    """A transform whose description does not show its setting, as a library's changed default
    (e.g. a resize's antialiasing) would not."""

    def __init__(self, amount: float) -> None:
        super().__init__()
        self.amount = amount

    def forward(self, x):
        return (x + self.amount).clamp(-1, 1)

    def __repr__(self) -> str:
        return "Brighten()"


def test_a_transform_that_reads_the_same_but_changes_the_pixels_gives_another_key(tmp_path):
    model, data = tiny_dcgan(), TinyImages()
    data.train_set.transform = Brighten(0.0)
    first = tiny_evaluation(tmp_path).evaluate(model, data)
    data.train_set.transform = Brighten(0.5)
    assert tiny_evaluation(tmp_path).evaluate(model, data) != first
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_the_cache_key_is_the_same_for_the_same_data_and_differs_with_its_size_or_split(tmp_path):
    """The key of the real statistics: what the datamodule states of its data, not how it loads it."""
    callback = tiny_evaluation(tmp_path)
    indices = torch.arange(40)

    def key(split: str = "train", **settings) -> str:
        data = DSpritesDataModule(source="procedural", val_size=64, **settings)
        return str(cache_path(tmp_path, callback.cache_identity(data, indices, split)))

    assert key() == key() == key(batch_size=3, num_workers=2)
    # another image size, split or held-out seed: other images, another key
    assert len({key(), key(image_size=32), key(split="val"), key(seed=1)}) == 4
    assert DSpritesDataModule(val_size=64, source="procedural").dataset_fingerprint("train") != (
        DSpritesDataModule(val_size=65, source="procedural").dataset_fingerprint("train"))


def test_a_datamodule_without_the_real_image_api_is_a_clear_error(tmp_path):
    class Plain(pl.LightningDataModule):
        value_range, data_shape = (-1.0, 1.0), (1, 28, 28)

        def train_dataloader(self):
            return TinyImages().train_dataloader()

    with pytest.raises(TypeError, match=r"Plain lacks split_dataset, subset_loader, dataset_fingerprint: derive it from datamodules.BaseDataModule"):
        tiny_evaluation(tmp_path).evaluate(tiny_dcgan(), Plain())


def test_a_datamodule_that_states_no_data_settings_fails_at_start_up(tmp_path):
    class Unstated(TinyImages):
        data_settings = BaseDataModule.data_settings

    callback = tiny_evaluation(tmp_path)
    with pytest.raises(NotImplementedError, match=r"Unstated does not state its data_settings\(\)"):
        callback.setup(SimpleNamespace(datamodule=Unstated(), fast_dev_run=False), tiny_dcgan(), "fit")


def test_the_files_fingerprint(tmp_path):
    write_images(tmp_path / "data", 3)
    fingerprint = files_fingerprint(tmp_path / "data")
    assert fingerprint.startswith("3 files/") and files_fingerprint(tmp_path / "data") == fingerprint
    assert files_fingerprint(tmp_path / "nowhere") == "absent"
    (tmp_path / "data" / "0000.png").touch()  # only the modification time
    assert files_fingerprint(tmp_path / "data") != fingerprint


def test_samples_come_from_the_ema_generator(tmp_path):
    model = tiny_dcgan(ema_decay=0.5)
    model.setup("fit")
    with torch.no_grad():
        for parameter in model.sampling_network_ema.parameters():
            parameter.mul_(0.5)
    plain = tiny_dcgan()
    plain.generator = copy.deepcopy(model.sampling_network_ema.module)
    data = TinyImages()
    assert tiny_evaluation(tmp_path).evaluate(model, data) == tiny_evaluation(tmp_path).evaluate(plain, data)
    assert tiny_evaluation(tmp_path).evaluate(tiny_dcgan(), data) != tiny_evaluation(tmp_path).evaluate(plain, data)


def logged_rows(log_dir: Path, key: str = "fid/fid") -> list[dict[str, str]]:
    with open(next(log_dir.rglob("metrics.csv"))) as file:
        return [row for row in csv.DictReader(file) if row.get(key)]


def test_the_callback_logs_its_keys_at_the_cadence_and_at_the_end(tmp_path):
    callback = tiny_evaluation(tmp_path / "cache", every_n_steps=2)
    trainer = quiet_trainer(max_steps=3, logger=CSVLogger(tmp_path / "logs"), callbacks=[callback])
    trainer.fit(tiny_dcgan(), TinyImages())
    rows = logged_rows(tmp_path / "logs")
    assert [int(row["step"]) for row in rows] == [2, 3]
    for row in rows:
        assert float(row["fid/fid"]) > 0 and float(row["fid/kid_std"]) >= 0 and row["fid/kid_mean"]
        assert 0 <= float(row["fid/precision"]) <= 1 and 0 <= float(row["fid/recall"]) <= 1
    assert trainer.callback_metrics["fid/fid"].item() == pytest.approx(float(rows[-1]["fid/fid"]))


def test_the_callback_needs_real_images_from_a_datamodule(tmp_path):
    trainer = quiet_trainer(max_steps=1, callbacks=[tiny_evaluation(tmp_path)])
    with pytest.raises(ValueError, match="datamodule"):
        trainer.fit(tiny_dcgan(), train_dataloaders=TinyImages().train_dataloader())


# ---------------------------------------------------------------------------------------- DDP


@pytest.mark.slow
def test_two_processes_give_the_one_process_scores(tmp_path):
    settings = dict(num_samples=48, num_real_samples=64, kid_subsets=4, kid_subset_size=16, kid_real_samples=40, batch_size=16)
    data = DSpritesDataModule(source="procedural", batch_size=8)
    # one process caches the real statistics that the "warm" callback then finds on disk
    FIDEvaluation(feature_extractor=TinyFeatures(), cache_dir=str(tmp_path / "warm"), **settings).evaluate(DCGAN(**TINY), data)

    def fid_callback(prefix: str) -> dict:
        arguments = {**settings, "cache_dir": str(tmp_path / prefix), "prefix": prefix, "every_n_steps": 100,
                     "feature_extractor": {"class_path": "tests.probes.TinyFeatures"}}
        return {"class_path": "callbacks.FIDEvaluation", "init_args": arguments}

    logger = {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(tmp_path / "logs")}}
    model = {"class_path": "lightning_modules.DCGAN", "init_args": {**TINY, "ema_decay": 0.9}}
    result = run_cli(tmp_path, model, "gan_ddp", max_steps=2, callbacks=[fid_callback("cold"), fid_callback("warm")], logger=logger)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {prefix: logged_rows(tmp_path / "logs", f"{prefix}/fid") for prefix in ("cold", "warm")}
    assert [int(row["step"]) for prefix in rows for row in rows[prefix]] == [2, 2]
    report = torch.load(tmp_path / "ranks" / "rank0.pt", weights_only=False)
    assert report["world_size"] == 2
    # the same model, evaluated by one process with the real statistics computed afresh
    single = DCGAN(**TINY, ema_decay=0.9)
    single.setup("fit")
    single.load_state_dict(report["state_dict"])
    scores = FIDEvaluation(feature_extractor=TinyFeatures(), cache_dir=str(tmp_path / "one"), **settings).evaluate(single, data)
    for prefix in ("cold", "warm"):  # real side embedded by both processes / loaded by process 0
        for name, value in scores.items():
            assert float(rows[prefix][0][f"{prefix}/{name}"]) == pytest.approx(value, rel=1e-6, abs=1e-9), (prefix, name)
    # the statistics the two processes cached are the one-process ones
    from_ddp_cache = FIDEvaluation(feature_extractor=TinyFeatures(), cache_dir=str(tmp_path / "cold"), **settings)
    assert from_ddp_cache.evaluate(single, data) == pytest.approx(scores, rel=1e-9)


def test_a_checkpoint_ranked_by_a_score_is_kept_only_at_the_steps_the_score_saw(tmp_path):
    """FID every 2 steps, a checkpoint every step monitoring it: steps 2 and 4 are ranked; step 3,
    when callback_metrics still holds step 2's FID, is not filed under a score of other weights."""
    from callbacks import RunCheckpoint

    checkpoint = RunCheckpoint(dirpath=str(tmp_path / "checkpoints"), every_n_train_steps=1, monitor="fid/fid", mode="min")
    trainer = quiet_trainer(max_steps=4, enable_checkpointing=True, callbacks=[tiny_evaluation(tmp_path / "cache", every_n_steps=2), checkpoint])
    with pytest.warns(UserWarning, match="computed at step 2, so this step is not ranked"):
        trainer.fit(tiny_dcgan(), TinyImages())
    steps = sorted(torch.load(path, weights_only=True)["global_step"] for path in checkpoint.best_k_models)
    assert steps == [2, 4]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == sorted(["last.ckpt", *(Path(p).name for p in checkpoint.best_k_models)])


def test_fast_dev_run_scores_once_at_the_smoke_test_sizes(tmp_path):
    """FID-10k as configured, under Lightning's fast_dev_run: one evaluation, at the end, of
    FIDEvaluation.fast_dev_run_sizes' samples, and no scores.csv."""
    model = DCGAN(**TINY)
    drawn = []
    sample = model.sample
    model.sample = lambda n, generator=None: drawn.append(n) or sample(n, generator)
    evaluation = FIDEvaluation(feature_extractor=TinyFeatures(), cache_dir=str(tmp_path / "cache"), every_n_steps=1)
    trainer = quiet_trainer(fast_dev_run=True, callbacks=[evaluation], default_root_dir=str(tmp_path))
    trainer.fit(model, DSpritesDataModule(source="procedural", batch_size=8, num_workers=0, value_range=(-1.0, 1.0)))
    assert sum(drawn) == FIDEvaluation.fast_dev_run_sizes["num_samples"] == 8
    assert np.isfinite(evaluation.last_results["fid"])
    assert not list(tmp_path.rglob("scores.csv"))
