"""Two CPU processes (gloo) through the real CLI: every rank ends each step with the same weights
(with gan_ddp named, or chosen for devices=2 and for strategy=ddp), and disentanglement scores
equal one process's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from datamodules import DSpritesDataModule
from metrics import METRICS
from tests.helpers import METRIC_SIZES, TINY, ddp_config, launch, run_cli
from tests.models import MODELS, Entry
from tests.probes import FixedCodesAutoencoder


def steps(entry: Entry) -> int:
    """Generator steps of a model's run: 3, and 2 past the step from which every network trains."""
    return max(3, entry.all_trained_from + 2)


@pytest.fixture(scope="module")
def every_model_under_gan_ddp(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """Every registered model (tests/models.py) trained with gan_ddp on 2 processes, one after the
    other in one launch (``tests.ddp_matrix``); each model's reports in ``<folder>/<name>/ranks``."""
    folder = tmp_path_factory.mktemp("ddp")
    configs = [
        ddp_config(folder / name, entry.config(folder), max_steps=steps(entry),
                   data={"class_path": "tests.helpers.RandomImages",
                         "init_args": {"size": entry.size, "n": entry.images, "value_range": list(entry.value_range)}})
        for name, entry in MODELS.items()
    ]
    return launch("tests.ddp_matrix", *map(str, configs)), folder


def assert_identical_ranks(folder: Path, steps: int, launched_by: str = "LightningEnvironment") -> None:
    reports = [torch.load(folder / "ranks" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    assert [r["cluster_environment"] for r in reports] == [launched_by] * 2
    assert reports[0]["global_step"] == steps
    # the ranks trained on different data, yet agree on every weight and gradient after every step
    assert reports[0]["first_batch_sum"] != reports[1]["first_batch_sum"]
    for report in reports:
        assert report["max_weight_difference"] == 0.0
        assert report["max_gradient_difference"] == 0.0
    for key, value in reports[0]["state_dict"].items():
        assert torch.equal(value, reports[1]["state_dict"][key]), key


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_gan_ddp_keeps_every_rank_identical(every_model_under_gan_ddp, name):
    result, folder = every_model_under_gan_ddp
    assert (folder / name / "ranks" / "rank1.pt").exists(), result.stderr[-3000:]
    assert_identical_ranks(folder / name, steps(MODELS[name]))
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_gan_ddp_keeps_every_rank_identical_under_torchrun(tmp_path):
    entry = MODELS["dcgan-ema"]
    result = run_cli(tmp_path, entry.config(tmp_path), "gan_ddp", data={
        "class_path": "tests.helpers.RandomImages", "init_args": {"size": entry.size, "n": entry.images, "value_range": list(entry.value_range)}},
        torchrun=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_identical_ranks(tmp_path, 3, launched_by="TorchElasticEnvironment")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["auto", "ddp"])
def test_lightning_users_ddp_settings_train_with_gan_ddp(tmp_path, strategy):
    """devices=2 with the strategy left to Lightning, or strategy=ddp, as Lightning users write
    them: the run uses gan_ddp (said in one line) and every rank ends with the same weights."""
    result = run_cli(tmp_path, {"class_path": "lightning_modules.DCGAN", "init_args": TINY}, strategy, max_steps=2)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert output.count(f"Strategy gan_ddp: torch's DDP wrapper (strategy '{strategy}')") == 1  # rank 0 says it
    reports = [torch.load(tmp_path / "ranks" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2] and reports[0]["global_step"] == 2
    for report in reports:
        assert report["max_weight_difference"] == 0.0
    for key, value in reports[0]["state_dict"].items():
        assert torch.equal(value, reports[1]["state_dict"][key]), key


@pytest.mark.slow
def test_disentanglement_scores_under_ddp_equal_one_process(tmp_path):
    evaluation = {"class_path": "callbacks.DisentanglementEvaluation",
                  "init_args": {"sizes": METRIC_SIZES, "every_n_steps": 2, "seed": 3, "batch_size": 64}}
    save = {"class_path": "tests.probes.SaveScores", "init_args": {"out_dir": str(tmp_path / "scores")}}
    model = {"class_path": "tests.probes.FixedCodesAutoencoder"}
    result = run_cli(tmp_path, model, "gan_ddp", max_steps=2, callbacks=[evaluation, save])
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [torch.load(tmp_path / "scores" / f"rank{r}.pt") for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    # one process, same seed: the functional forms on the same codes
    ground_truth = DSpritesDataModule(source="procedural").ground_truth
    encode = FixedCodesAutoencoder().encode
    expected = {}
    for name, metric in METRICS.items():
        one = metric(ground_truth, seed=3, **METRIC_SIZES[name])
        one.observe(encode)
        expected.update({f"disentanglement/disentanglement_lib/{k}": float(v) for k, v in one.compute().items()})
    assert len(expected) == 7
    for report in reports:
        assert report["scores"] == pytest.approx(expected, abs=1e-12)
