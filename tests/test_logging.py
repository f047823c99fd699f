"""What a run logs, read back as a user sees it: one x-axis (generator updates) for losses, learning
rates, scores and images (CSV rows, W&B history); W&B offline runs hold the scalars, the config, the
saved grids' pixels, resumed parts that continue the steps, and log_model's checkpoints; no login
means offline, not a prompt."""

from __future__ import annotations

import csv
import json
import importlib.metadata
import logging
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import wandb
import yaml
from PIL import Image
from wandb.proto import wandb_internal_pb2 as pb
from pytorch_lightning.loggers import CSVLogger

from callbacks import SampleGrid
from callbacks.periodic import PeriodicCallback
from lightning_modules import WGANGP
from lightning_modules.cli import main
from lightning_modules.cli.loggers import WandbLogger
from tests.helpers import RandomImages, quiet_trainer, wandb_records


def test_offline_run_holds_scalars_images_and_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    every = {"init_args": {"every_n_steps": 2}}
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "max_steps": 4, "log_every_n_steps": 1, "default_root_dir": "run",
            "enable_progress_bar": False, "enable_checkpointing": False,
            "logger": {"class_path": "lightning_modules.cli.loggers.WandbLogger",
                       "init_args": {"project": "tests", "name": "offline", "save_dir": "run"}},
            "callbacks": [{"class_path": "callbacks.SampleGrid", **every}, {"class_path": "callbacks.LatentTraversal", **every}],
        },
        "model": {"class_path": "lightning_modules.DCGAN",
                  "init_args": {"data_shape": [1, 64, 64], "width": 4, "latent_dim": 5}},
        "data": {"class_path": "datamodules.DSpritesDataModule", "init_args": {"source": "procedural", "batch_size": 8}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    main(["fit", "--config", "config.yaml"])
    assert wandb.run is None  # the CLI command ended its run, flushing it to disk

    images = sorted(p.name for p in (tmp_path / "run" / "images").iterdir())
    assert images == [f"{kind}_step{step:07d}.png" for kind in ("samples", "traversal") for step in (2, 4)]
    (run_dir,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    assert len(list((run_dir / "files" / "media" / "images").rglob("samples_*.png"))) == 2
    assert len(list((run_dir / "files" / "media" / "images").rglob("traversal_*.png"))) == 2
    # the history rows (not the summary, whose copy of a value can be printed with other digits)
    rows = [row for row in history_rows(wandb_records(run_dir)) if "train/g_loss" in row]
    assert [row["trainer/global_step"] for row in rows] == [1, 2, 3, 4]  # generator updates done
    assert all(row["train/d_loss"] > 0 and np.isfinite(row["train/g_loss"]) for row in rows)
    assert len({row["train/g_loss"] for row in rows}) == 4
    (run_file,) = run_dir.glob("run-*.wandb")
    raw = run_file.read_bytes()
    assert b"seed_everything" in raw and b"DSpritesDataModule" in raw  # the full config was uploaded
    # and the stack that ran it: the W&B config's "versions" entry
    for name in ("scikit-learn", "pytorch-lightning", "numpy"):
        assert f'"{name}":"{importlib.metadata.version(name)}"'.encode() in raw


def no_login(monkeypatch, tmp_path):
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "netrc").write_text("")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))


def test_no_login_means_offline_with_one_warning_line(monkeypatch, tmp_path, caplog):
    """Said when the run starts: building the logger (before the CLI's start-up checks) says and writes nothing."""
    no_login(monkeypatch, tmp_path)
    with caplog.at_level(logging.WARNING, logger="lightning_modules.cli.loggers"):
        logger = WandbLogger(project="tests", save_dir=str(tmp_path / "run"))
        assert not caplog.records and not (tmp_path / "run").exists()
        logger.experiment
    assert logger._offline
    (record,) = caplog.records
    assert "\n" not in record.getMessage() and "no W&B login" in record.getMessage()


def test_unreachable_server_means_offline(monkeypatch, tmp_path, caplog):
    no_login(monkeypatch, tmp_path)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    with caplog.at_level(logging.WARNING, logger="lightning_modules.cli.loggers"):
        logger = WandbLogger(project="tests", save_dir=str(tmp_path))
        logger.experiment
    assert logger._offline
    assert "127.0.0.1 is unreachable" in caplog.records[0].getMessage()


@pytest.mark.parametrize("mode", ["offline", "disabled"])
def test_wandb_mode_is_respected_silently(monkeypatch, tmp_path, caplog, mode):
    no_login(monkeypatch, tmp_path)
    monkeypatch.setenv("WANDB_MODE", mode)
    with caplog.at_level(logging.WARNING, logger="lightning_modules.cli.loggers"):
        assert WandbLogger(project="tests", save_dir=str(tmp_path))._offline
    assert not caplog.records


def test_a_resumed_run_continues_the_wandb_run_of_its_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "max_steps": 2, "default_root_dir": "run", "enable_progress_bar": False,
            "logger": {"class_path": "lightning_modules.cli.loggers.WandbLogger", "init_args": {"project": "tests", "save_dir": "run"}},
            "callbacks": [{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": "run/checkpoints", "save_last": True, "every_n_train_steps": 1}}],
        },
        "model": {"class_path": "lightning_modules.DCGAN", "init_args": {"data_shape": [1, 64, 64], "width": 4, "latent_dim": 5}},
        "data": {"class_path": "datamodules.DSpritesDataModule", "init_args": {"source": "procedural", "batch_size": 8}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    main(["fit", "--config", "config.yaml"])
    run_id = torch.load("run/checkpoints/last.ckpt", weights_only=True)["wandb_run_id"]

    main(["fit", "--config", "config.yaml", "--ckpt_path", "last", "--trainer.max_steps", "4"])
    checkpoint = torch.load("run/checkpoints/last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 4 and checkpoint["wandb_run_id"] == run_id
    # offline-run-<start time to the second>-<id>, with "-1" appended when both began in the same second
    runs = sorted(p.name for p in (tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(re.fullmatch(rf"offline-run-[0-9_]+-{run_id}(-1)?", name) for name in runs), runs


class StepScore(PeriodicCallback):
    """An evaluation callback in miniature: publishes a score the way FID and the disentanglement metrics do."""

    def run(self, trainer, pl_module):
        self.publish(trainer, {"eval/score": float(trainer.global_step)})


def steps_with(rows: list[dict[str, str]], column: str) -> list[int]:
    return [int(row["step"]) for row in rows if row.get(column)]


def test_every_logged_value_is_indexed_by_generator_updates(tmp_path):
    """WGAN-GP with n_critic 5: 20 batches make 4 generator updates; losses, learning rates, scores
    and images of one moment share its step, at the cadence log_every_n_steps counts in generator updates."""
    model = WGANGP(latent_dim=5, data_shape=(1, 28, 28), width=4, n_critic=5)
    trainer = quiet_trainer(
        max_steps=4, log_every_n_steps=2, default_root_dir=str(tmp_path), logger=CSVLogger(tmp_path, name="csv"),
        callbacks=[SampleGrid(num_samples=4, nrow=2, every_n_steps=2), StepScore(every_n_steps=2)],
    )
    trainer.fit(model, RandomImages(size=28, n=200, batch_size=4))
    assert trainer.global_step == 4

    with open(Path(trainer.logger.log_dir) / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    for column in ("train/critic_loss", "train/g_loss", "train/lr_generator", "train/lr_discriminator", "eval/score"):
        assert steps_with(rows, column) == [2, 4], column
    assert [float(row["eval/score"]) for row in rows if row.get("eval/score")] == [2.0, 4.0]
    images = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert images == ["samples_step0000002.png", "samples_step0000004.png"]


# ---------------------------------------------------------------- what W&B recorded, read back
def history_rows(records: list[pb.Record]) -> list[dict]:
    """Each history row as {key: value}, a logged image as {key: {"filenames": [...], ...}}."""
    rows = []
    for record in records:
        if record.HasField("history"):
            row: dict = {}
            for item in record.history.item:
                *parents, name = item.nested_key or [item.key]
                node = row
                for parent in parents:
                    node = node.setdefault(parent, {})
                node[name] = json.loads(item.value_json)
            rows.append(row)
    return rows


def run_record(records: list[pb.Record]) -> pb.RunRecord:
    return next(r.run for r in records if r.HasField("run"))


def wgan_gp_config(**trainer) -> dict:
    """A tiny WGAN-GP (n_critic 2) on procedural dSprites, logging to W&B under run/."""
    return {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "default_root_dir": "run", "enable_progress_bar": False,
            "logger": {"class_path": "lightning_modules.cli.loggers.WandbLogger", "init_args": {"project": "tests", "save_dir": "run"}},
            **trainer,
        },
        "model": {"class_path": "lightning_modules.WGANGP",
                  "init_args": {"data_shape": [1, 64, 64], "width": 4, "latent_dim": 5, "n_critic": 2}},
        "data": {"class_path": "datamodules.DSpritesDataModule", "init_args": {"source": "procedural", "batch_size": 8}},
    }


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_wandb_shows_the_saved_grids_with_every_row_at_its_generator_update(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    config = wgan_gp_config(
        max_steps=4, log_every_n_steps=2, enable_checkpointing=False,
        callbacks=[{"class_path": "callbacks.SampleGrid", "init_args": {"num_samples": 16, "nrow": 4, "every_n_steps": 2}},
                   {"class_path": "tests.test_logging.StepScore", "init_args": {"every_n_steps": 2}}],
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    main(["fit", "--config", "config.yaml"])

    (run_dir,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    rows = history_rows(wandb_records(run_dir))
    for key in ("train/critic_loss", "train/g_loss", "train/lr_generator", "train/lr_discriminator", "eval/score", "images/samples"):
        assert [row["trainer/global_step"] for row in rows if key in row] == [2, 4], key
    assert all(row["_step"] == row["trainer/global_step"] for row in rows)  # W&B's own step too

    logged = {row["_step"]: row["images/samples"] for row in rows if "images/samples" in row}
    grids = {}
    for step, image in logged.items():
        (filename,) = image["filenames"]
        grids[step] = pixels(run_dir / "files" / filename)
        saved = pixels(tmp_path / "run" / "images" / f"samples_step{step:07d}.png")
        assert grids[step].shape == saved.shape and np.abs(grids[step] - saved).max() <= 1, step
        assert len(np.unique(grids[step])) > 2, "a binary (black) image"
    assert not np.array_equal(grids[2], grids[4])


def test_a_resumed_offline_run_continues_the_steps_of_the_run_it_resumes(tmp_path, monkeypatch):
    """Both parts of a run stopped at step 2 and resumed to 4, as `wandb sync` reads them: the same
    run id, part two marked to resume it, and W&B's own step (the one sync keeps, or raises to the
    run's next step) continuing from part one's instead of restarting at 0."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    checkpoints = {"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                   "init_args": {"dirpath": "run/checkpoints", "save_last": True, "every_n_train_steps": 1}}
    config = wgan_gp_config(max_steps=2, log_every_n_steps=1, callbacks=[checkpoints])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    main(["fit", "--config", "config.yaml"])
    main(["fit", "--config", "config.yaml", "--ckpt_path", "last", "--trainer.max_steps", "4"])

    parts = [wandb_records(run_dir) for run_dir in (tmp_path / "run" / "wandb").glob("offline-run-*")]
    first, second = sorted(parts, key=lambda records: run_record(records).start_time.ToDatetime())
    assert run_record(first).run_id == run_record(second).run_id
    assert run_record(second).resume  # what `wandb sync` reads to append to the run instead of replacing it
    for records, steps in ((first, [1, 2]), (second, [3, 4])):
        rows = history_rows(records)
        assert [row["_step"] for row in rows] == steps
        assert [row["trainer/global_step"] for row in rows if "train/g_loss" in row] == steps


@pytest.mark.parametrize("log_model", [True, "all"])
def test_log_model_offline_records_the_checkpoints_for_wandb_sync(tmp_path, monkeypatch, log_model):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb_data"))  # where W&B stages artifact files until sync
    checkpoints = {"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                   "init_args": {"dirpath": "run/checkpoints", "save_last": True, "every_n_train_steps": 1}}
    config = wgan_gp_config(max_steps=2, callbacks=[checkpoints])
    config["trainer"]["logger"]["init_args"]["log_model"] = log_model
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    main(["fit", "--config", "config.yaml"])

    (run_dir,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    records = wandb_records(run_dir)
    artifacts = [r.artifact for r in records if r.HasField("artifact")]
    assert artifacts and all(a.type == "model" and a.name == f"model-{run_record(records).run_id}" for a in artifacts)
    # each holds a checkpoint file W&B keeps (staged) for `wandb sync` to upload
    staged = [Path(entry.local_path) for a in artifacts for entry in a.manifest.contents]
    assert staged and all(path.is_file() and torch.load(path, weights_only=True)["global_step"] > 0 for path in staged)
