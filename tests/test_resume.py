"""Stop at an epoch end or mid-epoch, resume from the checkpoint, and land on the uninterrupted run's weights and optimizer states."""

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

from callbacks import RunCheckpoint
from tests.helpers import quiet_trainer
from tests.models import MODELS
from tests.probes import PreemptAfterBatch


def train(case, tmp_path, ckpt_path=None, callbacks=(), **trainer_args):
    entry = MODELS[case]
    pl.seed_everything(0)
    model = entry.build(tmp_path.parent)
    checkpoint = RunCheckpoint(dirpath=tmp_path, every_n_train_steps=1)
    trainer = quiet_trainer(enable_checkpointing=True, callbacks=[checkpoint, *callbacks], **trainer_args)
    trainer.fit(model, entry.data(), ckpt_path=ckpt_path)
    return model, trainer


def first_run_stop(case: str, stop: str) -> dict:
    """Trainer arguments that end the first run at the end of epoch 1, or halfway through it."""
    entry = MODELS[case]
    if stop == "epoch end":
        return {"max_epochs": 1}
    return {"max_steps": max(1, entry.images // 8 // 2 // entry.init_args.get("n_critic", 1))}


@pytest.mark.parametrize("stop", ["epoch end", "mid-epoch"])
@pytest.mark.parametrize("case", list(MODELS))
def test_resume_reproduces_the_uninterrupted_weights_and_optimizer_states(tmp_path, case, stop):
    uninterrupted, _ = train(case, tmp_path / "a", max_epochs=2)

    _, first = train(case, tmp_path / "b", **first_run_stop(case, stop))
    batches = 2 * MODELS[case].images // 8
    assert first.fit_loop.epoch_loop.total_batch_idx + 1 < batches
    torch.manual_seed(12345)  # whatever the process did in between must not matter
    resumed, trainer = train(case, tmp_path / "b", ckpt_path="last", max_epochs=2)

    assert trainer.fit_loop.epoch_loop.total_batch_idx + 1 == batches
    assert any("sampling_network_ema" in key for key in resumed.state_dict()) == case.endswith("ema")
    assert_same_training_state(uninterrupted, resumed)


@pytest.mark.parametrize("case", ["wgan-gp", "wgan-boosted", "latent-constraints"])
def test_a_preemption_inside_a_round_of_critic_steps_resumes_the_round(tmp_path, case):
    """Batch 6 is inside a round of critic updates (of 4, of 3 or 2, of 4): the preemption
    checkpoint must carry how far the round had got, or the resumed run steps G at another batch."""
    uninterrupted, _ = train(case, tmp_path / "a", max_epochs=2)
    with pytest.raises(SIGTERMException):
        train(case, tmp_path / "b", max_epochs=2, callbacks=[PreemptAfterBatch(6)])
    resumed, _ = train(case, tmp_path / "b", ckpt_path="last", max_epochs=2)
    assert_same_training_state(uninterrupted, resumed)


def assert_same_training_state(expected_model, actual_model) -> None:
    expected, actual = expected_model.state_dict(), actual_model.state_dict()
    assert expected.keys() == actual.keys()
    different = [key for key in expected if not torch.equal(expected[key], actual[key])]
    assert not different, f"weights differ after resume: {different[:5]}"
    optimizers = zip(expected_model.optimized_networks, expected_model.trainer.optimizers, actual_model.trainer.optimizers)
    for network, a, b in optimizers:
        assert_same_optimizer_state(a.state_dict(), b.state_dict(), network)


def assert_same_optimizer_state(expected: dict, actual: dict, network: str) -> None:
    assert expected["param_groups"] == actual["param_groups"], network
    assert expected["state"].keys() == actual["state"].keys(), network
    for index, state in expected["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(actual["state"][index][key])), f"{network} {key}"
