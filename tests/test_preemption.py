"""Preemption through the real CLI in a subprocess: a signal mid-epoch leaves a checkpoint where the
requeued job looks, and the resumed run ends on the uninterrupted run's weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml


pytestmark = pytest.mark.slow  # subprocess runs of the real CLI

ROOT = Path(__file__).resolve().parents[1]
MODEL = {"class_path": "lightning_modules.DCGAN", "init_args": {"data_shape": [1, 64, 64], "width": 4, "latent_dim": 6}}
PAUSE_STEP, MAX_STEPS = 3, 6


def start_fit(run_dir: Path, extra_callbacks=(), ckpt_path: str | None = None, env: dict | None = None) -> subprocess.Popen:
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": MAX_STEPS, "logger": False,
            "enable_progress_bar": False, "enable_model_summary": False, "default_root_dir": str(run_dir),
            "callbacks": [
                {"class_path": "callbacks.RunCheckpoint",
                 "init_args": {"dirpath": str(run_dir / "checkpoints"), "every_n_train_steps": 1000}},
                {"class_path": "tests.probes.SaveWeights", "init_args": {"path": str(run_dir / "final.pt")}},
                *extra_callbacks,
            ],
        },
        "model": MODEL,
        "data": {"class_path": "datamodules.DSpritesDataModule", "init_args": {"source": "procedural", "batch_size": 8}},
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "lightning_modules", "fit", "--config", str(run_dir / "config.yaml")]
    if ckpt_path:
        command.append(f"--ckpt_path={ckpt_path}")
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", **(env or {})}
    return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]
    return output


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()[0][-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def steps_in_folder(folder: Path) -> dict[str, int]:
    return {p.name: torch.load(p, weights_only=True)["global_step"] for p in sorted(folder.glob("*.ckpt"))}


def pause_at(run_dir: Path) -> dict:
    return {"class_path": "tests.probes.PauseAtStep", "init_args": {"step": PAUSE_STEP, "ready_file": str(run_dir / "paused")}}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    finish(start_fit(run_dir))
    return torch.load(run_dir / "final.pt", weights_only=True)


def assert_same_weights(run_dir: Path, uninterrupted: dict) -> None:
    resumed = torch.load(run_dir / "final.pt", weights_only=True)
    assert resumed["global_step"] == uninterrupted["global_step"] == MAX_STEPS
    different = [k for k, v in uninterrupted["state_dict"].items() if not torch.equal(v, resumed["state_dict"][k])]
    assert not different, different[:5]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_a_signal_mid_epoch_saves_last_and_the_resumed_run_matches_the_uninterrupted_one(tmp_path, uninterrupted, signum):
    process = start_fit(tmp_path, [pause_at(tmp_path)])
    wait_for(tmp_path / "paused", process)
    process.send_signal(signum)
    output = finish(process)
    assert f"Preempted at step {PAUSE_STEP}" in output
    assert not (tmp_path / "final.pt").exists()  # it stopped: training did not run to its end
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == PAUSE_STEP

    output = finish(start_fit(tmp_path, ckpt_path="last"))
    assert "Restored all states" in output
    assert_same_weights(tmp_path, uninterrupted)
    # preempted before the first step checkpoint: the resumed run's states still go to last.ckpt, not last-v1.ckpt
    assert steps_in_folder(tmp_path / "checkpoints") == {"last.ckpt": MAX_STEPS}


def test_under_slurm_the_requeue_signal_requeues_and_the_next_job_resumes_by_itself(tmp_path, uninterrupted):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'scontrol.log'}\n")
    scontrol.chmod(0o755)
    slurm = {
        "SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "idgan", "SLURM_JOB_ID": "4242",
        "SLURM_NODELIST": "localhost", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    run_dir = tmp_path / "run"
    process = start_fit(run_dir, [pause_at(run_dir)], env=slurm)
    wait_for(run_dir / "paused", process)
    process.send_signal(signal.SIGUSR1)  # SLURM's warning before the time limit (--signal=USR1@90)
    wait_for(tmp_path / "scontrol.log", process)
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    process.send_signal(signal.SIGTERM)  # then SLURM stops the job
    finish(process)
    saved = sorted(p.name for p in run_dir.glob("hpc_ckpt_*.ckpt"))
    assert saved == ["hpc_ckpt_1.ckpt", "hpc_ckpt_2.ckpt"]
    assert torch.load(run_dir / "hpc_ckpt_2.ckpt", weights_only=True)["global_step"] == PAUSE_STEP

    output = finish(start_fit(run_dir, env=slurm))  # the requeued job: same command, no --ckpt_path
    assert "hpc_ckpt_2.ckpt" in output
    assert_same_weights(run_dir, uninterrupted)
