"""A NaN or infinite loss is caught at the update it happens in: skipped, or the run stops with a
checkpoint of the last good state; either way the step number is reported."""

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from tests.helpers import RandomImages, flat_parameters, quiet_trainer
from tests.probes import POISONED_BATCH, PoisonedRegression
from tests.test_ddp import run_cli


class WeightsPerBatch(pl.Callback):
    def __init__(self):
        self.weights = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.weights.append(flat_parameters(module).clone())


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_skip_leaves_the_weights_untouched_by_that_update_and_trains_on(poison):
    model, record = PoisonedRegression(poison, nonfinite_loss="skip"), WeightsPerBatch()
    trainer = quiet_trainer(max_steps=5, callbacks=[record])
    with pytest.warns(UserWarning, match=f"non-finite loss .* at step {POISONED_BATCH} in the update of generator: skipped"):
        trainer.fit(model, RandomImages(n=64))
    assert trainer.global_step == 5 and model.nonfinite_updates == 1
    weights = record.weights + [flat_parameters(model)]
    unchanged = [i for i in range(len(weights) - 1) if torch.equal(weights[i], weights[i + 1])]
    assert unchanged == [POISONED_BATCH]
    assert torch.isfinite(weights[-1]).all()


def test_stop_saves_the_last_good_state_at_that_step_and_a_resumed_run_continues(tmp_path):
    model, record = PoisonedRegression(nonfinite_loss="stop"), WeightsPerBatch()
    trainer = quiet_trainer(max_steps=5, callbacks=[record, ModelCheckpoint(dirpath=tmp_path)], enable_checkpointing=True)
    with pytest.warns(UserWarning, match=f"stopped at step {POISONED_BATCH} after a non-finite loss"):
        trainer.fit(model, RandomImages(n=64))
    assert trainer.global_step == POISONED_BATCH
    path = tmp_path / f"nonfinite-step={POISONED_BATCH}.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["global_step"] == POISONED_BATCH
    saved = torch.cat([checkpoint["state_dict"][k].reshape(-1) for k in model.state_dict()])
    assert torch.equal(saved, record.weights[POISONED_BATCH])  # the weights before the bad update

    resumed = PoisonedRegression(poison=1.0)
    trainer = quiet_trainer(max_steps=5)
    trainer.fit(resumed, RandomImages(n=64), ckpt_path=path)
    assert trainer.global_step == 5 and torch.isfinite(flat_parameters(resumed)).all()


@pytest.mark.slow
def test_a_nonfinite_loss_on_one_process_skips_the_update_on_every_process(tmp_path):
    model = {"class_path": "tests.probes.PoisonedRegression", "init_args": {"image_size": 64, "poisoned_rank": 1, "nonfinite_loss": "skip"}}
    result = run_cli(tmp_path, model, "gan_ddp", max_steps=4)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"at step {POISONED_BATCH} in the update of generator: skipped" in result.stderr
    reports = [torch.load(tmp_path / "ranks" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["global_step"] for r in reports] == [4, 4]
    assert all(r["max_weight_difference"] == 0.0 for r in reports)
    assert all(torch.isfinite(t).all() for r in reports for t in r["state_dict"].values())
