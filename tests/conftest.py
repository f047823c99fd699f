import os

import pytest
import torch
import wandb

from datamodules.synthetic import FactorGroundTruth
from tests.helpers import DSPRITES_SIZES

# Tests never talk to W&B servers, and never wait for them (read when a run starts, not at import).
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# The tests' networks are tiny: one thread per process is faster than torch's default of one per
# core, and on a busy machine its spinning OpenMP threads made the ring tests 30 times slower
# (15 s -> 470 s). The variable reaches the subprocesses (CLI and DDP runs) too.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def no_wandb_run_outlives_its_test():
    """A run left open would be reused by the next test's WandbLogger."""
    yield
    if wandb.run is not None:
        wandb.finish()


@pytest.fixture(autouse=True, scope="session")
def tests_write_only_under_tmp_path():
    """A test that forgets ``default_root_dir``/``tmp_path`` writes into the user's checkout (once:
    a ``predictions/`` folder that got committed). Names the new entries at the repository root."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ignored = {".pytest_cache", "__pycache__", ".venv", ".coverage"}
    before = set(os.listdir(root))
    yield
    new = sorted(set(os.listdir(root)) - before - ignored)
    assert not new, f"tests wrote {new} into the repository root {root}: give them tmp_path"


@pytest.fixture(scope="session")
def dsprites_like():
    """A ground truth with dSprites' factor sizes whose observations are the factors (the metrics' tests)."""
    return FactorGroundTruth(DSPRITES_SIZES)
