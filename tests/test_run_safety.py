"""What a run writes survives failures and keeps secrets: checkpoint saves interrupted by a crash
or a full disk leave the previous checkpoint intact, and the W&B API key never lands in the config
that is saved to the run directory or uploaded.

(Checkpoints are read with weights_only=True, refusing a malicious pickle:
test_bad_input.py, test_bad_checkpoints_are_refused.)
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
import torch
from lightning_fabric.utilities.cloud_io import _atomic_save

from lightning_modules.training.checkpoints import SafeCheckpointIO
from lightning_modules.cli import CLI, UploadConfig, main

DCGAN_DSPRITES = str(Path(__file__).resolve().parents[1] / "configs" / "dcgan_dsprites.yaml")
TINY = ["--model.init_args.width=4", "--data.init_args.batch_size=8", "--data.init_args.source=procedural",
        "--data.init_args.num_workers=0", "--trainer.enable_progress_bar=false", "--trainer.accelerator=cpu"]


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def torch_save_failing_midway(obj, file, *args, **kwargs) -> None:
    """What a full disk or a crash does to a save: part of the bytes written, then an error."""
    file.write(b"the first bytes of a checkpoint")
    disk_full()


def cross_device(*args, **kwargs):
    """os.rename from $TMPDIR into a run directory on another filesystem."""
    raise OSError(errno.EXDEV, "Invalid cross-device link")


def copy_half_then_disk_full(source, destination, **kwargs) -> None:
    Path(destination).write_bytes(Path(source).read_bytes()[:10])
    disk_full()


# ---------------------------------------------------------------------------- atomic writes
def test_an_interrupted_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    SafeCheckpointIO().save_checkpoint({"weights": torch.zeros(100)}, path)
    previous = path.read_bytes()
    monkeypatch.setattr(torch, "save", torch_save_failing_midway)
    with pytest.raises(OSError, match="No space left"):
        SafeCheckpointIO().save_checkpoint({"weights": torch.ones(100)}, path)
    assert path.read_bytes() == previous
    assert os.listdir(tmp_path) == ["last.ckpt"]  # no partial file left behind
    monkeypatch.undo()
    assert torch.equal(SafeCheckpointIO().load_checkpoint(path)["weights"], torch.zeros(100))


def test_lightnings_own_save_loses_the_previous_checkpoint_when_tmp_is_another_filesystem(tmp_path, monkeypatch):
    """Why SafeCheckpointIO exists: Lightning's transaction writes its temporary file in $TMPDIR and,
    when the run directory is on another filesystem, commits by copying onto the checkpoint; a full
    disk during that copy truncates it. SafeCheckpointIO commits by a rename within the directory."""
    path = tmp_path / "last.ckpt"
    _atomic_save({"weights": torch.zeros(100)}, path)
    previous = path.read_bytes()
    monkeypatch.setattr(os, "rename", cross_device)
    monkeypatch.setattr(shutil, "copyfile", copy_half_then_disk_full)
    with pytest.raises(OSError, match="No space left"):
        _atomic_save({"weights": torch.ones(100)}, path)
    assert len(path.read_bytes()) < len(previous)  # the previous checkpoint is lost
    SafeCheckpointIO().save_checkpoint({"weights": torch.ones(100)}, path)  # the same conditions do not touch it
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.ones(100))


def test_a_save_failing_in_the_loop_leaves_last_ckpt_loadable_and_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", DCGAN_DSPRITES, *TINY, "--trainer.max_steps=1"])
    last = tmp_path / "runs" / "dcgan_dsprites" / "checkpoints" / "last.ckpt"
    previous = last.read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", torch_save_failing_midway)
        with pytest.raises(OSError, match="No space left"):
            main(["fit", "--config", DCGAN_DSPRITES, *TINY, "--trainer.max_steps=2", "--ckpt_path=last"])
    assert last.read_bytes() == previous
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
    assert torch.load(last, weights_only=True)["global_step"] == 1


# ------------------------------------------------------------------------------ credentials
ENVIRONMENT_KEY, GIVEN_KEY = "e" * 40, "f" * 40


def test_the_environments_wandb_key_lands_in_no_file_of_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_API_KEY", ENVIRONMENT_KEY)
    main(["fit", "--config", DCGAN_DSPRITES, *TINY, "--trainer.max_steps=1"])
    files = [path for path in (tmp_path / "runs").rglob("*") if path.is_file()]
    assert any(path.name == "config.yaml" for path in files) and any(path.suffix == ".wandb" for path in files)
    assert not [path for path in files if ENVIRONMENT_KEY.encode() in path.read_bytes()]


@pytest.mark.parametrize(
    "override",
    [
        f'--trainer.logger.init_args.settings={{"api_key": "{GIVEN_KEY}", "mode": "offline"}}',
        f"--trainer.logger.dict_kwargs.wandb_key={ENVIRONMENT_KEY}",  # under a name of the user's choosing
    ],
    ids=["api_key-in-init-args", "environment-key-under-another-name"],
)
def test_a_wandb_key_in_the_loggers_args_is_left_out_of_the_saved_config(override, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_API_KEY", ENVIRONMENT_KEY)
    cli = CLI(args=["--config", DCGAN_DSPRITES, *TINY, override], run=False)
    assert ENVIRONMENT_KEY in str(cli.config) or GIVEN_KEY in str(cli.config)  # the run itself still has it
    upload = next(callback for callback in cli.trainer.callbacks if isinstance(callback, UploadConfig))
    saved, uploaded = upload.parser.dump(upload.config, skip_none=False), str(upload.config.as_dict())
    for text in (saved, uploaded):
        assert ENVIRONMENT_KEY not in text and GIVEN_KEY not in text
