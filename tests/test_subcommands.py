"""``validate``, ``test`` and ``predict`` for every model class (README "Using it"): the model's own
held-out numbers and the config's evaluation callbacks on that split, and files a user can open.

The per-class matrix runs the Trainer in-process on tiny models (the CLI costs seconds a call); the
CLI itself is run on one shipped config here, and on the CelebA card sequence in test_card.py."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torchvision.io import decode_png

from callbacks import FIDEvaluation, RunCheckpoint
from datamodules.base import BaseDataModule, TensorPairDataset
from lightning_modules import CLR, CVAE, IDGANSC, VAEGAN, BetaVAE, BiGAN, FactorVAE, InfoGAN, InfoGANCR, LatentConstraints
from lightning_modules.cli import CLI, main
from tests.helpers import TINY_FID, quiet_trainer
from tests.probes import TinyFeatures
from tests.models import MODELS

ROOT = Path(__file__).resolve().parents[1]
#: The first entry of each model class in the registry (tests/models.py): every model the package defines.
CLASS_CASES = [name for name, entry in MODELS.items() if next(n for n, e in MODELS.items() if e.model is entry.model) == name]
VAES = (BetaVAE, FactorVAE, CVAE)
#: Models that reconstruct their input (an encoder and a decoder/generator of it; CLR's critic).
RECONSTRUCTING = (*VAES, BiGAN, VAEGAN, CLR)
#: Models that give codes of data: those, and the info-head GANs and latent constraints (its VAE's).
ENCODING = (*RECONSTRUCTING, IDGANSC, InfoGAN, InfoGANCR, LatentConstraints)


class Splits(BaseDataModule):
    """Random images in three splits of different content (so a score of the val split differs from
    the test split's), with 10-class labels, through BaseDataModule's loaders."""

    def __init__(self, size: int, value_range: tuple[float, float], n: int = 24, batch_size: int = 8) -> None:
        super().__init__(batch_size=batch_size, value_range=value_range)
        self.data_shape, self.n = (1, size, size), n

    def data_settings(self) -> dict:
        return {"n": self.n}

    def setup(self, stage: str | None = None) -> None:
        low, high = self.value_range
        for seed, split in enumerate(("train", "val", "test")):
            generator = torch.Generator().manual_seed(seed)
            images = torch.rand(self.n, *self.data_shape, generator=generator) ** (seed + 1) * (high - low) + low
            setattr(self, f"{split}_set", TensorPairDataset(images, torch.randint(10, (self.n,), generator=generator)))


def build(case, tmp_path):
    entry = MODELS[case]
    pl.seed_everything(0)
    return entry.build(tmp_path), Splits(entry.size, entry.value_range)


def fid(tmp_path) -> FIDEvaluation:
    return FIDEvaluation(feature_extractor=TinyFeatures(), cache_dir=str(tmp_path / "fid_cache"), prefix="fid_2k",
                         every_n_steps=None, **TINY_FID)


@pytest.mark.parametrize("case", CLASS_CASES)
def test_validate_test_and_predict_from_a_checkpoint(case, tmp_path):
    """Trained one step, then each command from the checkpoint on a fresh model: the scores of the
    split (FID against its images; a VAE's negative ELBO and its terms; the reconstruction error of
    a model that reconstructs), logged at the checkpoint's step; predict's files."""
    model, data = build(case, tmp_path)
    trainer = quiet_trainer(max_steps=1, enable_checkpointing=True, callbacks=[RunCheckpoint(dirpath=tmp_path / "checkpoints")])
    trainer.fit(model, data)
    checkpoint = str(tmp_path / "checkpoints" / "last.ckpt")

    results = {}
    for split in ("val", "test"):
        model, data = build(case, tmp_path)
        trainer = quiet_trainer(callbacks=[fid(tmp_path)], logger=CSVLogger(tmp_path / "csv", name=split, version=0),
                                default_root_dir=tmp_path)
        run = trainer.validate if split == "val" else trainer.test
        (results[split],) = run(model, data, ckpt_path=checkpoint)
        expected = {f"{split}/fid_2k/{key}" for key in ("fid", "kid_mean", "kid_std", "precision", "recall")}
        if isinstance(model, VAES):
            expected |= {f"{split}/negative_elbo", f"{split}/reconstruction_nll", f"{split}/kl"}
            assert results[split][f"{split}/negative_elbo"] == pytest.approx(
                results[split][f"{split}/reconstruction_nll"] + results[split][f"{split}/kl"], rel=1e-5)
        if isinstance(model, RECONSTRUCTING):
            expected.add(f"{split}/reconstruction_error")
        assert expected <= set(results[split]), sorted(results[split])
        with open(tmp_path / "csv" / split / "version_0" / "metrics.csv") as file:
            rows = list(csv.DictReader(file))
        assert {int(row["step"]) for row in rows} == {1}  # the checkpoint's step, not Lightning's 0
    assert results["val"]["val/fid_2k/fid"] != results["test"]["test/fid_2k/fid"]  # each against its own split

    model, data = build(case, tmp_path)
    quiet_trainer(default_root_dir=tmp_path).predict(model, data, ckpt_path=checkpoint)
    folder = tmp_path / "predictions"
    assert sorted(p.name for p in folder.glob("*.pt")) == ["batch0000_rank0.pt", "batch0001_rank0.pt", "batch0002_rank0.pt"]
    predictions = torch.load(folder / "batch0000_rank0.pt", weights_only=True)
    assert predictions["samples"].shape == (8, *model.data_shape)
    if isinstance(model, ENCODING):
        assert predictions["codes"].shape[0] == 8 and predictions["inputs"].shape == (8, *model.data_shape)
    assert ("codes" in predictions) == isinstance(model, ENCODING)
    assert ("reconstructions" in predictions) == isinstance(model, RECONSTRUCTING)
    if isinstance(model, RECONSTRUCTING):
        assert predictions["reconstructions"].shape == (8, *model.data_shape)
        assert image_spread(folder / "reconstructions_batch0000_rank0.png") > 0
    assert image_spread(folder / "samples_batch0000_rank0.png") > 0


def image_spread(path) -> float:
    """The standard deviation of a PNG's pixels: 0 for a blank image."""
    return decode_png(torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)).float().std().item()


def test_the_samples_predict_writes_are_the_same_each_time(tmp_path):
    """predict draws batch j's samples from seed j: two runs write the same files."""
    model, data = build("dcgan-ema", tmp_path)
    first, again = (quiet_trainer(default_root_dir=tmp_path / run).predict(model, data) for run in ("a", "b"))
    assert all(torch.equal(a["samples"], b["samples"]) for a, b in zip(first, again))
    assert not torch.equal(first[0]["samples"], first[1]["samples"])


def test_fit_runs_no_validation_loop(tmp_path):
    """Every model now has a validation_step (for the validate command); fit must not start
    validating every epoch because of it (the evaluation callbacks score during fit)."""
    model, data = build("beta-vae", tmp_path)
    trainer = quiet_trainer(max_epochs=2)
    trainer.fit(model, data)
    assert trainer.num_val_batches == [] and not any(key.startswith("val/") for key in trainer.callback_metrics)


def test_ring_config_through_the_cli(tmp_path, monkeypatch, capsys):
    """A shipped 2-D config through the CLI (in-process): validate and test print Lightning's table
    with the mixture scores of that split and the reconstruction error; predict writes the points
    (and keeps no copy of every batch in memory)."""
    monkeypatch.chdir(tmp_path)
    config = ROOT / "configs" / "bigan_ring.yaml"
    tiny = ["--config", str(config), "--data.init_args.num_samples=320", "--data.init_args.batch_size=32",
            "--model.init_args.width=8", "--trainer.enable_progress_bar=false", "--trainer.logger=false"]
    main(["fit", *tiny, "--trainer.max_steps=2"])
    for command, title in (("validate", "Validate metric"), ("test", "Test metric")):
        capsys.readouterr()
        main([command, *tiny, "--ckpt_path", "last"])
        table = capsys.readouterr().out
        split = "val" if command == "validate" else "test"
        assert title in table
        for key in ("mixture/modes_covered", "mixture/high_quality_fraction", "mixture/covariance_distance", "reconstruction_error"):
            assert f"{split}/{key}" in table, key
    predict = CLI(args=["predict", *tiny, "--ckpt_path", "last"])
    assert predict.trainer.predict_loop.predictions == []  # the files are the output: no copy kept in memory
    predictions = torch.load(tmp_path / "runs" / "bigan_ring" / "predictions" / "batch0000_rank0.pt", weights_only=True)
    assert predictions["samples"].shape == (32, 2) and predictions["codes"].shape == (32, 4)


def test_validate_scores_disentanglement_on_data_with_ground_truth(tmp_path):
    """A dSprites model under validate: the config's DisentanglementEvaluation runs once, beside the
    VAE's held-out numbers on the val split."""
    from callbacks import DisentanglementEvaluation
    from datamodules import DSpritesDataModule
    from tests.helpers import TINY_DISENTANGLEMENT

    data = DSpritesDataModule(source="procedural", val_size=16, batch_size=8, value_range=(0.0, 1.0))
    model = BetaVAE(data_shape=(1, 64, 64), width=4, latent_dim=4)
    evaluation = DisentanglementEvaluation(metrics=["mig"], sizes={"mig": TINY_DISENTANGLEMENT["mig"]}, every_n_steps=None)
    (results,) = quiet_trainer(callbacks=[evaluation]).validate(model, data)
    assert {"val/disentanglement/disentanglement_lib/mig", "val/negative_elbo", "val/reconstruction_error"} <= set(results)
    assert results["val/disentanglement/disentanglement_lib/mig"] == pytest.approx(evaluation.scores["disentanglement/disentanglement_lib/mig"])  # logged as float32
