"""The README's card command end to end, through the real CLI in subprocesses, on a CelebA-layout
folder written here: stage one, stage two, a resume that continues the step count and the W&B run,
then validate, test and predict from the same config and checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchvision.io import decode_png

from tests.helpers import with_tiny_evaluations, write_celeba

ROOT = Path(__file__).resolve().parents[1]


def cli(tmp_path: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "lightning_modules", *args], cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "COLUMNS": "200"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def steps_in(folder: Path) -> dict[str, int]:
    return {p.name: torch.load(p, weights_only=True, map_location="cpu")["global_step"] for p in folder.glob("*.ckpt")}


@pytest.mark.slow
def test_the_card_command_end_to_end(tmp_path):
    # 8 train, 4 val, 4 test images; FID on a tiny stand-in of the Inception (tests.probes.TinyFeatures)
    write_celeba(tmp_path / "celeba", partition=[0] * 8 + [1] * 4 + [2] * 4)
    stage_one = with_tiny_evaluations(ROOT / "configs" / "beta_vae_celeba.yaml", tmp_path)
    stage_two = with_tiny_evaluations(ROOT / "configs" / "idgan_sc_celeba.yaml", tmp_path)
    data = [f"--data.init_args.root={tmp_path / 'celeba'}", "--data.init_args.batch_size=4", "--data.init_args.num_workers=0",
            "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--model.init_args.width=4"]
    two = ["--config", str(stage_two), *data, "--model.init_args.noise_dim=4", "--model.init_args.contrastive.num_pairs=8",
           "--model.init_args.contrastive.representation_dim=8"]

    cli(tmp_path, "fit", "--config", str(stage_one), *data, "--trainer.max_steps=2")
    assert steps_in(tmp_path / "runs" / "beta_vae_celeba" / "checkpoints")["last.ckpt"] == 2

    # stage two reads runs/beta_vae_celeba/checkpoints/last.ckpt, as the config says
    checkpoints = tmp_path / "runs" / "idgan_sc_celeba" / "checkpoints"
    cli(tmp_path, "fit", *two, "--trainer.max_steps=2", "--checkpoint_every_n_train_steps=1")
    first_run = torch.load(checkpoints / "last.ckpt", weights_only=True)["wandb_run_id"]
    output = cli(tmp_path, "fit", *two, "--trainer.max_steps=4", "--checkpoint_every_n_train_steps=1", "--ckpt_path", "last")
    assert "Restored all states from the checkpoint" in output
    steps = steps_in(checkpoints)
    assert sorted(steps.values()) == [1, 2, 3, 4, 4] and steps["last.ckpt"] == 4  # continued, not restarted
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["wandb_run_id"] == first_run
    runs = sorted((tmp_path / "runs" / "idgan_sc_celeba" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(run.name.endswith(f"-{first_run}") for run in runs)  # one W&B run, resumed

    for command, split in (("validate", "val"), ("test", "test")):
        output = cli(tmp_path, command, *two, "--ckpt_path", "last")
        for prefix in ("fid_2k", "fid_10k"):  # both FID callbacks of the config, against that split's images
            for key in ("fid", "kid_mean", "precision", "recall"):
                assert f"{split}/{prefix}/{key}" in output, (command, prefix, key)

    output = cli(tmp_path, "predict", *two, "--ckpt_path", "last")
    folder = tmp_path / "runs" / "idgan_sc_celeba" / "predictions"
    assert "predict: wrote 1 batches to runs/idgan_sc_celeba/predictions/" in output
    predictions = torch.load(folder / "batch0000_rank0.pt", weights_only=True)
    assert predictions["samples"].shape == (4, 3, 64, 64) and predictions["codes"].shape == (4, 20)
    grid = decode_png(torch.frombuffer(bytearray((folder / "samples_batch0000_rank0.png").read_bytes()), dtype=torch.uint8))
    assert grid.shape[0] == 3 and grid.float().std() > 1  # an image with content, not a blank one
