"""The shared base: stepping, step counting, toggling, clipping, EMA, sampling API, start-up checks."""

import math

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.precision import MixedPrecision

from lightning_modules import DCGAN, WGANGP, OptimizerConfig
from tests.helpers import RandomImages, flat_parameters, quiet_trainer


def tiny(model_class, **kwargs):
    return model_class(data_shape=(1, 28, 28), width=4, latent_dim=6, **kwargs)


def test_global_step_counts_generator_updates_and_critic_steps_n_critic_times_as_often():
    model = tiny(WGANGP, n_critic=3)
    trainer = quiet_trainer(max_steps=2)
    trainer.fit(model, RandomImages(size=28))
    critic_opt, generator_opt = trainer.optimizers
    assert trainer.global_step == 2
    assert trainer.fit_loop.epoch_loop.total_batch_idx + 1 == 6
    assert critic_opt.state_dict()["state"][0]["step"].item() == 6
    assert generator_opt.state_dict()["state"][0]["step"].item() == 2


def test_each_step_changes_only_its_own_network():
    model = tiny(DCGAN)
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    trainer = quiet_trainer(max_steps=1)
    trainer.fit(model, RandomImages(size=28))  # attaches optimizers
    generator_before, discriminator_before = flat_parameters(model.generator), flat_parameters(model.discriminator)

    with model.optimize("discriminator") as step:
        step(model.discriminator(real).mean())
    assert torch.equal(flat_parameters(model.generator), generator_before)
    assert not torch.equal(flat_parameters(model.discriminator), discriminator_before)

    discriminator_before = flat_parameters(model.discriminator)
    discriminator_grads = [p.grad.clone() for p in model.discriminator.parameters()]
    with model.optimize("generator") as step:
        loss = model.discriminator(model.generator(torch.randn(8, 6))).mean()
        assert not any(p.requires_grad for p in model.discriminator.parameters())
        step(loss)
    # toggled: backprop through D to G left D's gradients and weights as they were
    assert all(torch.equal(p.grad, g) for p, g in zip(model.discriminator.parameters(), discriminator_grads))
    assert torch.equal(flat_parameters(model.discriminator), discriminator_before)
    assert all(p.requires_grad for p in model.parameters())  # untoggled after the block


@pytest.mark.parametrize("loss_scaling", [False, True], ids=["32-bit", "16-mixed"])
def test_gradient_clipping_bounds_an_sgd_step(loss_scaling):
    sgd = OptimizerConfig(algorithm="sgd", lr=1.0)
    clipped = tiny(DCGAN, generator_optimizer=sgd, discriminator_optimizer=sgd, gradient_clip_norm=1e-3)
    before = flat_parameters(clipped.discriminator)
    # AMP's scaled gradients (scale 1024) must be unscaled before the norm is clipped
    plugins = [MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=1024.0))] if loss_scaling else []
    quiet_trainer(max_steps=1, plugins=plugins).fit(clipped, RandomImages(size=28))
    # one SGD step with lr 1 moves the weights by exactly the clipped gradient
    assert (flat_parameters(clipped.discriminator) - before).norm().item() == pytest.approx(1e-3, rel=1e-3)


def test_ema_tracks_the_generator_and_is_what_sample_uses():
    model = tiny(DCGAN, ema_decay=0.5)
    quiet_trainer(max_steps=3).fit(model, RandomImages(size=28))
    ema = model.sampling_network_ema
    assert ema is not None and int(ema.n_averaged) == 3
    assert not torch.equal(flat_parameters(ema.module), flat_parameters(model.generator))
    samples = model.sample(4, torch.Generator().manual_seed(0))
    with torch.no_grad(), model.evaluating():
        expected = ema.module(model.sample_latent(4, torch.Generator().manual_seed(0)))
    assert torch.allclose(samples, expected)
    assert model.training  # sample() restores the mode it found


def test_traverse_sweeps_one_dimension_per_row():
    model = tiny(DCGAN).eval()
    latent = torch.randn(6)
    images = model.traverse(latent, dims=[1, 4], steps=3)
    assert images.shape == (2, 3, 1, 28, 28)
    expected_latents = latent.repeat(3, 1)
    expected_latents[:, 4] = torch.tensor([-2.0, 0.0, 2.0])
    assert torch.allclose(images[1], model.generator(expected_latents), atol=1e-6)


def test_data_of_another_shape_is_a_clear_error_before_training():
    with pytest.raises(ValueError, match=r"shape \(1, 28, 28\).*\(1, 16, 16\).*image_size"):
        quiet_trainer(max_steps=1).fit(tiny(DCGAN), RandomImages(size=16))


def test_data_in_another_value_range_is_a_clear_error():
    data = RandomImages(size=28)
    data.value_range = (0.0, 1.0)
    with pytest.raises(ValueError, match=r"value_range"):
        quiet_trainer(max_steps=1).fit(tiny(DCGAN), data)


@pytest.mark.parametrize("bad", [dict(lr=-1e-4), dict(betas=(0.5, 1.0))])
def test_optimizer_config_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="lr|betas"):
        OptimizerConfig(**bad)


class LearningRates(pl.Callback):
    """(global step, each optimizer's learning rate) after every batch."""

    def __init__(self) -> None:
        self.seen = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen.append((trainer.global_step, *(o.param_groups[0]["lr"] for o in trainer.optimizers)))


def test_lr_schedules_follow_global_steps_and_are_logged():
    critic = OptimizerConfig(lr=1e-3, lr_schedule="cosine", schedule_steps=8)
    generator = OptimizerConfig(lr=1e-3, lr_schedule="linear")  # over max_steps
    model = tiny(WGANGP, n_critic=2, discriminator_optimizer=critic, generator_optimizer=generator)
    learning_rates = LearningRates()
    trainer = quiet_trainer(max_steps=4, callbacks=[learning_rates], log_every_n_steps=1)
    trainer.fit(model, RandomImages(size=28))
    # the critic steps 8 times but its schedule moves with the 4 generator steps, like the generator's
    assert [step for step, _, _ in learning_rates.seen] == [0, 1, 1, 2, 2, 3, 3, 4]
    for step, critic_lr, generator_lr in learning_rates.seen:
        assert critic_lr == pytest.approx(1e-3 * (1 + math.cos(math.pi * step / 8)) / 2, abs=1e-12)
        assert generator_lr == pytest.approx(1e-3 * (1 - step / 4), abs=1e-12)
    assert trainer.callback_metrics["train/lr_discriminator"].item() == pytest.approx(1e-3 * (1 + math.cos(math.pi / 2)) / 2)
    assert trainer.callback_metrics["train/lr_generator"].item() == 0.0


def test_an_lr_schedule_without_a_horizon_is_a_clear_error():
    model = tiny(DCGAN, generator_optimizer=OptimizerConfig(lr_schedule="linear"))
    with pytest.raises(ValueError, match=r"generator's optimizer has lr_schedule='linear'.*trainer.max_steps.*schedule_steps"):
        quiet_trainer(max_epochs=1).fit(model, RandomImages(size=28))
