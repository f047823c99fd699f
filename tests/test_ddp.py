"""Two CPU processes (gloo) through the real CLI: every rank ends each step with the same weights
(with gan_ddp named, or chosen for devices=2 and for strategy=ddp), and disentanglement scores
equal one process's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from datamodules import DSpritesDataModule
from metrics import METRICS
from tests.helpers import metric_sizes
from tests.probes import FixedCodesAutoencoder

ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    tmp_path: Path,
    model: dict,
    strategy: str,
    max_steps: int = 3,
    value_range: tuple = (-1.0, 1.0),
    callbacks: list[dict] = (),
    logger: dict | bool = False,
    checkpoint_dir: Path | None = None,
    torchrun: bool = False,
) -> subprocess.CompletedProcess:
    """``fit`` with 2 CPU processes; ``RankConsistency`` (then ``callbacks``) writes each rank's report;
    with ``checkpoint_dir``, a ModelCheckpoint saves ``last.ckpt`` there. The processes are launched
    by Lightning, or with ``torchrun`` by torch's elastic launcher (as on a cluster)."""
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 2,
            "strategy": strategy,
            "max_steps": max_steps,
            "logger": logger,
            "enable_checkpointing": checkpoint_dir is not None,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(tmp_path),
            "callbacks": [
                {"class_path": "tests.probes.RankConsistency", "init_args": {"out_dir": str(tmp_path / "ranks")}},
                *callbacks,
                *([{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(checkpoint_dir), "save_last": True}}] if checkpoint_dir else []),
            ],
        },
        "model": model,
        "data": {
            "class_path": "datamodules.DSpritesDataModule",
            "init_args": {"source": "procedural", "batch_size": 8, "value_range": list(value_range)},
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"] if torchrun else [sys.executable]
    return subprocess.run(
        [*launcher, "-m", "lightning_modules", "fit", "--config", str(path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


TINY = {"data_shape": [1, 64, 64], "width": 4, "latent_dim": 6}
STAGE_TWO = {"data_shape": [1, 64, 64], "width": 4, "code_dim": 3, "noise_dim": 2, "num_pairs": 8, "representation_dim": 8}
SHAPED = {"data_shape": [1, 64, 64], "width": 4, "latent_dim": 6}  # the models that take data_shape
UNIT = (0.0, 1.0)
MODELS = {
    "dcgan-ema": ({"class_path": "lightning_modules.DCGAN", "init_args": {**TINY, "ema_decay": 0.9}}, (-1.0, 1.0)),
    "wgan-gp": ({"class_path": "lightning_modules.WGANGP", "init_args": {**TINY, "n_critic": 2}}, (-1.0, 1.0)),
    "beta-vae": ({"class_path": "lightning_modules.BetaVAE", "init_args": {**TINY, "latent_dim": 3}}, UNIT),
    "idgan-sc": ({"class_path": "lightning_modules.IDGANSC", "init_args": STAGE_TWO}, UNIT),
    # step 0 is plain InfoGAN (D/Q, then G alone); CR (G with H) from step 1
    "infogan-cr": ({"class_path": "lightning_modules.InfoGANCR", "init_args": {"cr_start_step": 1}}, UNIT),
    "factor-vae": ({"class_path": "lightning_modules.FactorVAE", "init_args": {"width": 4, "discriminator_hidden": [8]}}, UNIT),
    "vae-annealed": (
        {"class_path": "lightning_modules.BetaVAE",
         "init_args": {**TINY, "latent_dim": 3, "beta": 1.0, "kl_annealing": {"schedule": "linear", "warmup_steps": 2}}},
        UNIT,
    ),
    # dSprites' labels are its 5 factor classes: an attribute vector of 5
    "cvae": ({"class_path": "lightning_modules.CVAE", "init_args": {**TINY, "label_kind": "attributes", "num_labels": 5}}, UNIT),
    "latent-constraints": (
        {"class_path": "lightning_modules.LatentConstraints",
         "init_args": {"latent_dim": 3, "data_shape": [1, 64, 64], "label_kind": "attributes", "num_labels": 5,
                       "hidden": [8], "n_critic": 2}},
        UNIT,
    ),
    # ALI's stochastic encoder, stepped with G from one loss
    "bigan-ali": (
        {"class_path": "lightning_modules.BiGAN", "init_args": {**SHAPED, "joint_hidden": 8, "stochastic_encoder": True}},
        (-1.0, 1.0),
    ),
    "vae-gan": ({"class_path": "lightning_modules.VAEGAN", "init_args": SHAPED}, (-1.0, 1.0)),
    "fgan": ({"class_path": "lightning_modules.FGAN", "init_args": {**SHAPED, "divergence": "kl"}}, (-1.0, 1.0)),
    "lsgan": ({"class_path": "lightning_modules.LSGAN", "init_args": SHAPED}, (-1.0, 1.0)),
    "ebgan": ({"class_path": "lightning_modules.EBGAN", "init_args": {**SHAPED, "code_dim": 8}}, (-1.0, 1.0)),
    # spectral norm's power-iteration buffers must stay identical on every rank too
    "wgan-spectral": (
        {"class_path": "lightning_modules.WGAN", "init_args": {**SHAPED, "n_critic": 2, "critic_normalization": "spectral"}},
        (-1.0, 1.0),
    ),
}
#: The models built on a pretrained β-VAE, and the argument naming its checkpoint.
PRETRAINED_VAE_ARGUMENT = {"idgan-sc": "distiller_checkpoint", "latent-constraints": "vae_checkpoint"}


def tiny_distiller(path: Path) -> str:
    """A β-VAE checkpoint with the code size of IDGAN-SC's and latent constraints' entries, written
    after one training step."""
    from lightning_modules import BetaVAE
    from tests.helpers import RandomImages, quiet_trainer

    trainer = quiet_trainer(max_steps=1)
    trainer.fit(BetaVAE(data_shape=(1, 64, 64), width=4, latent_dim=3), RandomImages(size=64, value_range=UNIT))
    trainer.save_checkpoint(path)
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("name", [*MODELS, "dcgan-ema under torchrun"])
def test_gan_ddp_keeps_every_rank_identical(tmp_path, name):
    torchrun = name.endswith(" under torchrun")
    name = name.removesuffix(" under torchrun")
    model, value_range = MODELS[name]
    if name in PRETRAINED_VAE_ARGUMENT:
        checkpoint = tiny_distiller(tmp_path / "pretrained_vae.ckpt")
        model = {**model, "init_args": {**model["init_args"], PRETRAINED_VAE_ARGUMENT[name]: checkpoint}}
    result = run_cli(tmp_path, model, "gan_ddp", value_range=value_range, torchrun=torchrun)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [torch.load(tmp_path / "ranks" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    launched_by = "TorchElasticEnvironment" if torchrun else "LightningEnvironment"
    assert [r["cluster_environment"] for r in reports] == [launched_by] * 2
    assert reports[0]["global_step"] == 3
    # the ranks trained on different data, yet agree on every weight and gradient after every step
    assert reports[0]["first_batch_sum"] != reports[1]["first_batch_sum"]
    for report in reports:
        assert report["max_weight_difference"] == 0.0
        assert report["max_gradient_difference"] == 0.0
    for key, value in reports[0]["state_dict"].items():
        assert torch.equal(value, reports[1]["state_dict"][key]), key


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


METRIC_SIZES = metric_sizes(200, batch=4)  # a few hundred encoded observations per metric


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
