"""What the user types when resuming wins: settings on the command line together with --ckpt_path
(a file or `last`) take effect, and the run's config.yaml shows what ran. The non-finite-loss
message's advice, a lower learning rate or gradient_clip_norm on resume, must work.

(An unchanged command resumes bit for bit: test_resume.py, test_checkpoints.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from lightning_modules.cli import CLI
from tests.helpers import shrunk_ring_config

pytestmark = pytest.mark.slow  # runs of the real CLI

ROUTES = {"last": "last", "file": "checkpoints/epoch=0-step=2.ckpt"}


def run(config: Path, *args: str) -> CLI:
    return CLI(args=["fit", "--config", str(config), *args])


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_a_lower_learning_rate_and_a_clip_given_on_resume_take_effect(tmp_path, route, schedule):
    """LSGAN on the ring trained with G's lr 1e-3 and no clipping to step 2, resumed to step 4 with
    G's lr 1e-4 and gradient_clip_norm 0.5 (the non-finite-loss message's advice). A linear
    schedule (over 8 steps) restarts from the new rate at its position: 1e-4 · (1 - 4/8) at step 4."""
    schedule_args = [f"--model.init_args.generator_optimizer.lr_schedule={schedule}", "--model.init_args.generator_optimizer.schedule_steps=8"]
    config = shrunk_ring_config(tmp_path, "lsgan_ring", every_n_train_steps=2, max_steps=2)
    run(config, *schedule_args)
    before = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert before["hyper_parameters"]["generator_optimizer"]["lr"] == 1e-3

    ckpt_path = ROUTES[route] if route == "last" else str(tmp_path / ROUTES[route])
    new = ["--model.init_args.generator_optimizer.lr=1e-4", "--model.init_args.gradient_clip_norm=0.5"]
    cli = run(config, *schedule_args, f"--ckpt_path={ckpt_path}", "--trainer.max_steps=4", *new)

    expected_lr = 1e-4 * (0.5 if schedule == "linear" else 1.0)
    generator = list(cli.model.optimized_networks).index("generator")
    discriminator = list(cli.model.optimized_networks).index("discriminator")
    # in the run
    assert cli.trainer.global_step == 4
    assert cli.trainer.optimizers[generator].param_groups[0]["lr"] == pytest.approx(expected_lr, rel=1e-6)
    assert cli.trainer.optimizers[discriminator].param_groups[0]["lr"] == 1e-3  # not given: as it was
    assert cli.model.gradient_clip_norm == 0.5
    # in the checkpoint it wrote
    after = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert after["global_step"] == 4
    assert after["optimizer_states"][generator]["param_groups"][0]["lr"] == pytest.approx(expected_lr, rel=1e-6)
    assert after["hyper_parameters"]["gradient_clip_norm"] == 0.5
    assert after["hyper_parameters"]["generator_optimizer"]["lr"] == 1e-4
    if schedule == "linear":
        assert after["lr_schedulers"][0]["base_lrs"] == [1e-4]
    # in the config it saved
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["model"]["init_args"]["generator_optimizer"]["lr"] == 1e-4
    assert saved["model"]["init_args"]["gradient_clip_norm"] == 0.5
    assert saved["trainer"]["max_steps"] == 4


def test_the_clip_given_on_resume_bounds_the_gradients(tmp_path):
    """The clip is in effect, not only recorded: every generator gradient norm at a step is at most 1e-3."""
    config = shrunk_ring_config(tmp_path, "lsgan_ring", every_n_train_steps=2, max_steps=2)
    run(config)
    cli = run(
        config, f"--ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}", "--trainer.max_steps=4",
        "--model.init_args.gradient_clip_norm=0.001",
        "--trainer.callbacks+=tests.probes.RecordGradientNorms", f"--trainer.callbacks.path={tmp_path / 'norms'}",
    )
    norms = [float(line) for line in (tmp_path / "norms").read_text().split()]
    assert cli.trainer.global_step == 4 and len(norms) == 2 * 2  # D and G, at steps 3 and 4
    assert max(norms) <= 1e-3 * (1 + 1e-5)


def test_a_setting_that_changes_the_networks_is_one_clear_error(tmp_path):
    config = shrunk_ring_config(tmp_path, "lsgan_ring", every_n_train_steps=2, max_steps=2)
    run(config)
    for ckpt_path in ("last", str(tmp_path / "checkpoints" / "last.ckpt")):
        with pytest.raises(ValueError, match=r"width=8.*this run has width=16.*--model\.init_args\.width=8"):
            run(config, f"--ckpt_path={ckpt_path}", "--trainer.max_steps=4", "--model.init_args.width=16")
