"""Checkpoints resume on another machine: written by 2 processes, resumed by one; written on a GPU
(CUDA-tagged storages), resumed on a CPU."""

from __future__ import annotations

import pytest
import torch

from datamodules import DSpritesDataModule
from lightning_modules import DCGAN
from tests.helpers import TINY, RandomImages, quiet_trainer, run_cli


@pytest.mark.slow
def test_a_checkpoint_of_two_processes_resumes_in_one(tmp_path):
    result = run_cli(tmp_path, {"class_path": "lightning_modules.DCGAN", "init_args": TINY}, "gan_ddp", max_steps=3, checkpoint_dir=tmp_path / "checkpoints")
    assert result.returncode == 0, result.stderr[-3000:]
    written = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert written["global_step"] == 3

    model = DCGAN(**TINY)
    trainer = quiet_trainer(max_steps=5)
    trainer.fit(model, DSpritesDataModule(source="procedural", batch_size=8), ckpt_path=tmp_path / "checkpoints" / "last.ckpt")
    assert trainer.global_step == 5
    for key, value in written["state_dict"].items():
        assert value.shape == model.state_dict()[key].shape


def save_as_if_on_cuda(checkpoint: dict, path, monkeypatch) -> None:
    """torch.save with every storage tagged "cuda:0", as a GPU run writes them."""
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(checkpoint, path)


def test_a_checkpoint_written_on_a_gpu_resumes_on_a_cpu(tmp_path, monkeypatch):
    model = DCGAN(**{**TINY, "data_shape": [1, 32, 32]})
    trainer = quiet_trainer(max_steps=2)
    trainer.fit(model, RandomImages(size=32, n=32))
    trainer.save_checkpoint(tmp_path / "cpu.ckpt")
    save_as_if_on_cuda(torch.load(tmp_path / "cpu.ckpt", weights_only=True), tmp_path / "gpu.ckpt", monkeypatch)
    if not torch.cuda.is_available():  # the simulation holds: loading it as it is needs a GPU
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "gpu.ckpt", weights_only=True)

    resumed = DCGAN(**{**TINY, "data_shape": [1, 32, 32]})
    trainer = quiet_trainer(max_steps=4)
    trainer.fit(resumed, RandomImages(size=32, n=32), ckpt_path=tmp_path / "gpu.ckpt")
    assert trainer.global_step == 4 and next(resumed.parameters()).device.type == "cpu"
