"""Class paths that moved (issue 16's layout: lightning_modules' support files into sub-packages, one
module per disentanglement score): a config that names one, as every run's config.yaml from before
the move does, still runs; each moved path is read as its new one, with one notice naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lightning_modules.cli import resolved_config
from lightning_modules.cli.moved import MOVED_CLASSES

ROOT = Path(__file__).resolve().parents[1]
DCGAN_DSPRITES = ROOT / "configs" / "dcgan_dsprites.yaml"

#: The parts of a config.yaml written before the move that name moved classes.
OLD_RUN = """\
trainer:
  logger:
    class_path: lightning_modules.loggers.WandbLogger
    init_args: {offline: true}
  plugins:
  - class_path: lightning_modules.checkpoints.SafeCheckpointIO
"""


@pytest.mark.parametrize("old, new", sorted(MOVED_CLASSES.items()))
def test_every_moved_class_path_names_its_class_still(old, new):
    from jsonargparse._util import import_object  # what the parser resolves a class_path with

    assert import_object(old) is import_object(new)
    assert f"{import_object(new).__module__}.{import_object(new).__qualname__}" == new  # the new path is the class's own


def test_a_config_with_moved_class_paths_parses_to_the_new_paths(tmp_path):
    (tmp_path / "old_run.yaml").write_text(OLD_RUN)
    config = resolved_config(DCGAN_DSPRITES, "--config", str(tmp_path / "old_run.yaml"))
    assert config["trainer"]["logger"]["class_path"] == "lightning_modules.cli.loggers.WandbLogger"
    assert [plugin["class_path"] for plugin in config["trainer"]["plugins"]] == ["lightning_modules.training.checkpoints.SafeCheckpointIO"]


@pytest.mark.slow
def test_an_old_runs_config_runs_with_one_notice_per_moved_path(tmp_path):
    """As a user runs it: exit status 0, no traceback, one line per moved path naming the new one,
    and the run's own config.yaml records the new paths (a later resume reads it without notices)."""
    (tmp_path / "old_run.yaml").write_text(OLD_RUN)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    result = subprocess.run(
        [sys.executable, "-m", "lightning_modules", "fit", "--config", str(DCGAN_DSPRITES), "--config", "old_run.yaml",
         "--model.init_args.width=4", "--data.init_args.batch_size=8", "--data.init_args.source=procedural",
         "--data.init_args.num_workers=0", "--trainer.max_steps=2", "--trainer.enable_progress_bar=false"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Traceback" not in output
    for old, new in (("lightning_modules.loggers.WandbLogger", "lightning_modules.cli.loggers.WandbLogger"),
                     ("lightning_modules.checkpoints.SafeCheckpointIO", "lightning_modules.training.checkpoints.SafeCheckpointIO")):
        notices = [line for line in output.splitlines() if old in line]
        assert len(notices) == 1 and new in notices[0], (old, notices)
    saved = yaml.safe_load((tmp_path / "runs" / "dcgan_dsprites" / "config.yaml").read_text())
    assert saved["trainer"]["logger"]["class_path"] == "lightning_modules.cli.loggers.WandbLogger"
