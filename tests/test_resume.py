"""Stop at an epoch end or mid-epoch, resume from the checkpoint, and land on the uninterrupted run's weights and optimizer states."""

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

from callbacks import RunCheckpoint

from lightning_modules import (
    CVAE, DCGAN, EBGAN, FGAN, IDGANSC, LSGAN, VAEGAN, WGAN,
    WGANGP, BetaVAE, BiGAN, FactorVAE, InfoGAN, InfoGANCR, KLAnnealing, LatentConstraints, OptimizerConfig,
)
from tests.helpers import RandomImages, quiet_trainer
from tests.probes import PreemptAfterBatch

SMALL_GAN = dict(data_shape=(1, 32, 32), width=4, latent_dim=6)
SHAPED_GAN = dict(data_shape=(1, 32, 32), width=4, latent_dim=6)  # models that take data_shape
SIGNED, UNIT = (-1.0, 1.0), (0.0, 1.0)
# model class, its arguments, the data's (image size, value range, number of images): 8 images a batch
CASES = {
    "dcgan-ema": (DCGAN, dict(SMALL_GAN, ema_decay=0.9), (32, SIGNED, 48)),
    "wgan-gp": (WGANGP, dict(SMALL_GAN, n_critic=4), (32, SIGNED, 48)),
    # the schedulers' positions are part of the state (the learning rates are compared too)
    "dcgan-lr-schedules": (
        DCGAN,
        dict(
            SMALL_GAN,
            generator_optimizer=OptimizerConfig(lr_schedule="linear", schedule_steps=16),
            discriminator_optimizer=OptimizerConfig(lr_schedule="cosine", schedule_steps=16),
        ),
        (32, SIGNED, 48),
    ),
    "beta-vae": (BetaVAE, dict(data_shape=(1, 32, 32), width=4, latent_dim=4), (32, UNIT, 48)),
    "idgan-sc-prior": (
        IDGANSC,
        dict(code_source="prior", data_shape=(1, 32, 32), width=4, code_dim=3, noise_dim=2, num_pairs=8, representation_dim=8),
        (32, UNIT, 48),
    ),
    # CR switches on mid-run (step 4), so the schedule must resume with the step count
    "infogan": (InfoGAN, dict(), (64, UNIT, 24)),
    "infogan-cr": (InfoGANCR, dict(cr_start_step=4), (64, UNIT, 24)),
    "factor-vae": (FactorVAE, dict(width=4, discriminator_hidden=(8,)), (64, UNIT, 24)),
    # the KL weight is still rising at the resume (step 6 of a 10-step warm-up)
    "vae-annealed": (BetaVAE, dict(data_shape=(1, 32, 32), width=4, latent_dim=4, beta=1.0, kl_annealing=KLAnnealing("linear", 10)), (32, UNIT, 48)),
    "cvae": (CVAE, dict(data_shape=(1, 32, 32), width=4, latent_dim=4), (32, UNIT, 48)),
    # actor steps after batches 4, 8, 12: the cadence straddles the resume at batch 6
    "latent-constraints": (LatentConstraints, dict(latent_dim=4, data_shape=(1, 32, 32), hidden=(8,), n_critic=4), (32, UNIT, 48)),
    "bigan-ali": (BiGAN, dict(SHAPED_GAN, joint_hidden=8, stochastic_encoder=True), (32, SIGNED, 48)),
    "vae-gan": (VAEGAN, SHAPED_GAN, (32, SIGNED, 48)),
    "fgan": (FGAN, dict(SHAPED_GAN, divergence="jensen_shannon"), (32, SIGNED, 48)),
    "lsgan": (LSGAN, SHAPED_GAN, (32, SIGNED, 48)),
    "ebgan": (EBGAN, dict(SHAPED_GAN, code_dim=8), (32, SIGNED, 48)),
    "wgan": (WGAN, dict(SHAPED_GAN, n_critic=4), (32, SIGNED, 48)),
    # rounds of 3, 2, 3, 2, ... critic updates (the reference code's boosted rounds, scaled down)
    "wgan-boosted": (WGAN, dict(SHAPED_GAN, n_critic=2, boosted_n_critic=3, boost_first=1, boost_every=2), (32, SIGNED, 48)),
}


def tiny_vae_checkpoint(directory) -> str:
    """The frozen VAE of the latent-constraints case, after one training step."""
    path = directory / "vae.ckpt"
    if not path.exists():
        trainer = quiet_trainer(max_steps=1)
        trainer.fit(BetaVAE(data_shape=(1, 32, 32), width=4, latent_dim=4), RandomImages(size=32, value_range=UNIT))
        trainer.save_checkpoint(path)
    return str(path)


def train(case, tmp_path, ckpt_path=None, callbacks=(), **trainer_args):
    model_class, kwargs, (size, value_range, n) = CASES[case]
    if model_class is LatentConstraints:
        kwargs = {**kwargs, "vae_checkpoint": tiny_vae_checkpoint(tmp_path.parent)}
    pl.seed_everything(0)
    model = model_class(**kwargs)
    checkpoint = RunCheckpoint(dirpath=tmp_path, every_n_train_steps=1)
    trainer = quiet_trainer(enable_checkpointing=True, callbacks=[checkpoint, *callbacks], **trainer_args)
    trainer.fit(model, RandomImages(size=size, n=n, batch_size=8, value_range=value_range), ckpt_path=ckpt_path)
    return model, trainer


def first_run_stop(case: str, stop: str) -> dict:
    """Trainer arguments that end the first run at the end of epoch 1, or halfway through it."""
    _, kwargs, (_, _, n) = CASES[case]
    if stop == "epoch end":
        return {"max_epochs": 1}
    return {"max_steps": max(1, n // 8 // 2 // kwargs.get("n_critic", 1))}


@pytest.mark.parametrize("stop", ["epoch end", "mid-epoch"])
@pytest.mark.parametrize("case", list(CASES))
def test_resume_reproduces_the_uninterrupted_weights_and_optimizer_states(tmp_path, case, stop):
    uninterrupted, _ = train(case, tmp_path / "a", max_epochs=2)

    _, first = train(case, tmp_path / "b", **first_run_stop(case, stop))
    assert first.fit_loop.epoch_loop.total_batch_idx + 1 < 2 * CASES[case][2][2] // 8
    torch.manual_seed(12345)  # whatever the process did in between must not matter
    resumed, trainer = train(case, tmp_path / "b", ckpt_path="last", max_epochs=2)

    assert trainer.fit_loop.epoch_loop.total_batch_idx + 1 == 2 * CASES[case][2][2] // 8
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
