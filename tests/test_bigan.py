"""BiGAN / ALI: what the joint discriminator sees, who trains on which loss, the encoder, and learning."""

from __future__ import annotations

import copy
import math

import pytest
import pytorch_lightning as pl
import torch

from callbacks import Reconstructions
from lightning_modules import BiGAN, OptimizerConfig
from lightning_modules.losses import bidirectional_generator_loss
from lightning_modules.nets import JointDiscriminator
from tests.helpers import Points, RandomImages, over_seeds, quiet_trainer, record_optimize_blocks, ring_figures

POINTS = dict(latent_dim=3, data_shape=(2,), width=8, joint_hidden=8)


def test_generator_and_encoder_minimise_the_discriminator_loss_with_swapped_labels():
    real, fake = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.0])
    sigmoid = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    # -E log D(G(z), z) - E log(1 - D(x, E(x)))
    by_hand = -(math.log(sigmoid(2.0)) + math.log(sigmoid(0.0))) / 2 - (
        math.log(1 - sigmoid(0.5)) + math.log(1 - sigmoid(-1.0))
    ) / 2
    assert bidirectional_generator_loss(real, fake).item() == pytest.approx(by_hand, rel=1e-6)


@pytest.mark.parametrize("data_shape", [(1, 28, 28), (3, 64, 64), (2,)])
def test_joint_discriminator_scores_each_pair_from_both_its_halves(data_shape):
    torch.manual_seed(0)
    discriminator = JointDiscriminator(data_shape, latent_dim=3, width=4, hidden=8).eval()
    x, z = torch.randn(5, *data_shape), torch.randn(5, 3)
    logits = discriminator(x, z)
    assert logits.shape == (5, 1)
    assert not torch.allclose(discriminator(x, z.roll(1, 0)), logits)  # same data, other latents
    assert not torch.allclose(discriminator(x.roll(1, 0), z), logits)  # same latents, other data
    assert torch.allclose(discriminator(x[:2], z[:2]), logits[:2])  # per pair, not per batch


def test_discriminator_sees_data_with_its_codes_as_real_and_samples_with_their_latents_as_fake():
    pl.seed_everything(0)
    model = BiGAN(**POINTS)
    initial = copy.deepcopy(model)  # the networks as the first D step sees them
    calls, batches = [], []
    model.discriminator.register_forward_hook(lambda module, args, output: calls.append(args))

    class RecordBatch(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            batches.append(batch[0].clone())

    quiet_trainer(max_steps=1, callbacks=[RecordBatch()]).fit(model, Points())
    assert len(calls) == 4  # D step: real, fake pair; G/E step: the same two pairs
    (x, code), (generated, z) = calls[0], calls[1]
    assert torch.equal(x, batches[0])
    assert torch.allclose(code, initial.encoder(x))  # (x, E(x))
    assert torch.allclose(generated, initial.generator(z))  # (G(z), z)
    assert not torch.allclose(z, initial.encoder(x))
    # the D step trains D alone: its pairs carry no graph back to E and G; the G/E step's do
    assert not code.requires_grad and not generated.requires_grad
    (x_again, code_again), (generated_again, z_again) = calls[2], calls[3]
    assert code_again.requires_grad and generated_again.requires_grad
    assert torch.equal(x_again, x) and torch.equal(z_again, z)
    assert torch.equal(code_again.detach(), code) and torch.equal(generated_again.detach(), generated)


def test_discriminator_step_then_one_step_of_generator_and_encoder_together():
    pl.seed_everything(0)
    model = BiGAN(**POINTS)
    blocks = record_optimize_blocks(model, ["generator", "encoder", "discriminator"])
    trainer = quiet_trainer(max_steps=2)
    trainer.fit(model, Points())
    discriminator = (("discriminator",), {"discriminator"})
    generator_and_encoder = (("generator", "encoder"), {"generator", "encoder"})
    assert blocks == [discriminator, generator_and_encoder] * 2
    assert trainer.global_step == 2  # one count per G/E step


def test_ali_encoder_samples_around_its_posterior_mean():
    torch.manual_seed(0)
    model = BiGAN(**POINTS, stochastic_encoder=True).eval()
    x = torch.randn(1, 2).expand(20000, 2)
    mean, log_var = model.encoder(x[:1]).chunk(2, dim=1)
    samples = model.encode(x, sample=True).detach()
    assert torch.equal(model.encode(x[:1]), mean)
    assert torch.allclose(samples.mean(0), mean[0].detach(), atol=0.03)
    assert torch.allclose(samples.std(0), (0.5 * log_var[0]).exp().detach(), rtol=0.03)
    # BiGAN's encoder is deterministic
    deterministic = BiGAN(**POINTS).eval()
    assert torch.equal(deterministic.encode(x[:4], sample=True), deterministic.encode(x[:4]))


def test_reconstructions_callback_shows_g_of_e_of_x(tmp_path):
    pl.seed_everything(0)
    model = BiGAN(latent_dim=4, data_shape=(1, 28, 28), width=4, joint_hidden=8, stochastic_encoder=True)
    trainer = quiet_trainer(max_steps=1, default_root_dir=tmp_path, callbacks=[Reconstructions(num_images=4, every_n_steps=1)])
    trainer.fit(model, RandomImages(size=28, n=8))
    assert (tmp_path / "images" / "reconstructions_step0000001.png").exists()
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    with torch.no_grad(), model.evaluating():
        expected = torch.nn.functional.mse_loss(model.generator(model.encode(x)), x)
    assert model.reconstruction_error(x).item() == pytest.approx(expected.item(), rel=1e-6)
    assert model.training  # the diagnostic switched back to training mode


def test_defaults_are_bigans_mnist_settings():
    model = BiGAN()
    assert model.latent_dim == 50 and model.data_shape == (1, 28, 28) and not model.stochastic_encoder
    for name in ("generator", "encoder", "discriminator"):
        assert model.optimized_networks[name] == OptimizerConfig(lr=2e-4, betas=(0.5, 0.999), weight_decay=2.5e-5)


@pytest.mark.parametrize("stochastic_encoder", [False, True], ids=["bigan", "ali"])
def test_learns_the_ring(stochastic_encoder):
    def measure(seed):
        pl.seed_everything(seed)
        adam = OptimizerConfig(lr=1e-3, betas=(0.5, 0.999))
        model = BiGAN(
            latent_dim=4, data_shape=(2,), width=64, joint_hidden=64, discriminator_normalization="none",
            stochastic_encoder=stochastic_encoder, generator_optimizer=adam, encoder_optimizer=adam, discriminator_optimizer=adam,
        )
        return ring_figures(model, seed)

    median = over_seeds(measure)
    # measured, seeds 0-5 (modes; covariance distance, reconstruction MSE as fractions of step 0's; high-quality fraction):
    # BiGAN modes 7 8 5 8 8 8, covariance .35 .35 .29 .08 .10 .07, high quality .17 .27 .30 .69 .43 .58,
    #       reconstruction .66 .35 .75 .16 .06 .15;
    # ALI   modes 8 8 8 8 8 8, covariance .16 .31 .13 .21 .15 .17, high quality .70 .59 .28 .71 .59 .69,
    #       reconstruction .14 1.46 .22 .31 .22 .36.  Untrained: 0 modes, 1, 0, 1.
    bigan = not stochastic_encoder
    assert median["modes"] >= 6
    assert median["covariance_ratio"] < (0.5 if bigan else 0.35)
    assert median["high_quality"] > (0.15 if bigan else 0.35)
    assert median["reconstruction_ratio"] < (0.8 if bigan else 0.6)
