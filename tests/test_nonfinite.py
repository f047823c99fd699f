"""A NaN or infinite loss, or a finite loss with a NaN or infinite gradient, is caught at the update
it happens in: skipped, or the run stops with a checkpoint of the last good state; either way the
step number and what went bad are reported. Under float16 AMP a loss-scale overflow stays the
GradScaler's business."""

import re

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.precision import MixedPrecision

from tests.helpers import RandomImages, flat_parameters, quiet_trainer, run_cli
from tests.probes import POISONED_BATCH, PoisonedRegression


class WeightsPerBatch(pl.Callback):
    def __init__(self):
        self.weights = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.weights.append(flat_parameters(module).clone())


POISONS = {  # PoisonedRegression's arguments; how the warning names what went bad, and its detail
    "nan loss": ({"poison": float("nan")}, "non-finite loss", "nan"),
    "inf loss": ({"poison": float("inf")}, "non-finite loss", "inf"),
    "nan gradient": ({"poisoned": "gradient"}, "non-finite gradient of generator", r"loss [\d.]+"),  # loss finite
}


@pytest.mark.parametrize("poison", POISONS)
def test_skip_leaves_the_weights_untouched_by_that_update_and_trains_on(poison):
    arguments, what, detail = POISONS[poison]
    model, record = PoisonedRegression(**arguments, nonfinite_loss="skip"), WeightsPerBatch()
    trainer = quiet_trainer(max_steps=5, max_epochs=2, callbacks=[record])  # skipped updates are no steps: bound the run
    with pytest.warns(UserWarning, match=rf"{what} \({detail}\) at step {POISONED_BATCH} in the update of generator: skipped"):
        trainer.fit(model, RandomImages(n=64))
    assert trainer.global_step == 5 and model.nonfinite_updates == 1
    weights = record.weights + [flat_parameters(model)]
    unchanged = [i for i in range(len(weights) - 1) if torch.equal(weights[i], weights[i + 1])]
    assert unchanged == [POISONED_BATCH]
    assert torch.isfinite(weights[-1]).all()


@pytest.mark.parametrize("poison", ["nan loss", "nan gradient"])
def test_stop_saves_the_last_good_state_at_that_step_and_a_resumed_run_continues(poison, tmp_path):
    arguments, what, _ = POISONS[poison]
    model, record = PoisonedRegression(**arguments, nonfinite_loss="stop"), WeightsPerBatch()
    trainer = quiet_trainer(max_steps=5, callbacks=[record, ModelCheckpoint(dirpath=tmp_path)], enable_checkpointing=True)
    with pytest.warns(UserWarning, match=f"stopped at step {POISONED_BATCH} after a {what}"):
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


def test_a_loss_scale_overflow_under_float16_amp_stays_the_grad_scalers_business():
    """Scaled by 2^40 the gradients overflow float16: the GradScaler skips those steps and lowers the
    scale until they fit, as it should. The gradient check must not call that a non-finite update."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40, growth_interval=10**6)
    model = PoisonedRegression(poison=1.0, nonfinite_loss="stop")
    trainer = quiet_trainer(max_steps=40, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    trainer.fit(model, RandomImages(n=64))
    assert trainer.global_step == 40 and model.nonfinite_updates == 0
    assert scaler.get_scale() < 2.0**40  # there were overflows, handled by the scaler
    assert torch.isfinite(flat_parameters(model)).all()


@pytest.mark.slow
@pytest.mark.parametrize("poisoned", ["loss", "gradient"])
def test_a_nonfinite_loss_or_gradient_on_one_process_skips_the_update_on_every_process(poisoned, tmp_path):
    model = {"class_path": "tests.probes.PoisonedRegression",
             "init_args": {"image_size": 64, "poisoned_rank": 1, "poisoned": poisoned, "nonfinite_loss": "skip"}}
    result = run_cli(tmp_path, model, "gan_ddp", max_steps=4)
    assert result.returncode == 0, result.stderr[-3000:]
    what = "non-finite loss" if poisoned == "loss" else "non-finite gradient of generator"
    assert re.search(rf"{what} \(.*\) at step {POISONED_BATCH} in the update of generator: skipped", result.stderr)
    reports = [torch.load(tmp_path / "ranks" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["global_step"] for r in reports] == [4, 4]
    assert all(r["max_weight_difference"] == 0.0 for r in reports)
    assert all(torch.isfinite(t).all() for r in reports for t in r["state_dict"].values())
