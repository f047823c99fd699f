"""Two CPU processes (gloo) through the real CLI: every rank ends each step with the same weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    tmp_path: Path, model: dict, strategy: str, max_steps: int = 3, value_range: tuple[float, float] = (-1.0, 1.0)
) -> subprocess.CompletedProcess:
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 2,
            "strategy": strategy,
            "max_steps": max_steps,
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": str(tmp_path),
            "callbacks": [{"class_path": "tests.probes.RankConsistency", "init_args": {"out_dir": str(tmp_path / "ranks")}}],
        },
        "model": model,
        "data": {"class_path": "datamodules.DSpritesDataModule", "init_args": {"source": "procedural", "batch_size": 8, "value_range": list(value_range)}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, "-m", "lightning_modules", "fit", "--config", str(path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


TINY = {"image_size": 64, "channels": 1, "width": 4, "latent_dim": 6}
UNIT = (0.0, 1.0)  # the data range of the models with sigmoid/Bernoulli outputs


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, value_range",
    [
        ({"class_path": "lightning_modules.DCGAN", "init_args": {**TINY, "ema_decay": 0.9}}, (-1.0, 1.0)),
        ({"class_path": "lightning_modules.WGANGP", "init_args": {**TINY, "n_critic": 2}}, (-1.0, 1.0)),
        # step 0 is plain InfoGAN (D/Q, then G alone); CR (G with H) from step 1
        ({"class_path": "lightning_modules.InfoGANCR", "init_args": {"cr_start_step": 1}}, UNIT),
        ({"class_path": "lightning_modules.FactorVAE", "init_args": {"width": 4, "discriminator_hidden": [8]}}, UNIT),
    ],
    ids=["dcgan-ema", "wgan-gp", "infogan-cr", "factor-vae"],
)
def test_gan_ddp_keeps_every_rank_identical(tmp_path, model, value_range):
    result = run_cli(tmp_path, model, "gan_ddp", value_range=value_range)
    assert result.returncode == 0, result.stderr[-3000:]
    reports = [torch.load(tmp_path / "ranks" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    assert reports[0]["global_step"] == 3
    # the ranks trained on different data, yet agree on every weight and gradient after every step
    assert reports[0]["first_batch_sum"] != reports[1]["first_batch_sum"]
    for report in reports:
        assert report["max_weight_difference"] == 0.0
        assert report["max_gradient_difference"] == 0.0
    for key, value in reports[0]["state_dict"].items():
        assert torch.equal(value, reports[1]["state_dict"][key]), key


@pytest.mark.slow
def test_plain_ddp_is_refused_with_the_fix_in_the_message(tmp_path):
    result = run_cli(tmp_path, {"class_path": "lightning_modules.DCGAN", "init_args": TINY}, "ddp", max_steps=1)
    assert result.returncode != 0
    assert "gan_ddp" in result.stderr
