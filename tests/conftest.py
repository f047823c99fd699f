import os

import pytest
import wandb

# Tests never talk to W&B servers, and never wait for them (read when a run starts, not at import).
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(autouse=True)
def no_wandb_run_outlives_its_test():
    """A run left open would be reused by the next test's WandbLogger."""
    yield
    if wandb.run is not None:
        wandb.finish()
