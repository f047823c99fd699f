"""WGAN: every critic weight clipped after each critic step, the step order, learning on the ring;
and spectral normalization as a config value of every GAN's discriminator."""

import pytest
import pytorch_lightning as pl
import torch
from torch.nn.utils import parametrize

from lightning_modules import DCGAN, EBGAN, FGAN, IDGANSC, LSGAN, VAEGAN, WGAN, WGANGP, OptimizerConfig
from tests.helpers import RandomImages, assert_learns_ring, quiet_trainer, record_optimize_blocks, toy_gan_arguments


def test_every_critic_weight_is_within_the_clip_value_after_each_critic_step():
    pl.seed_everything(0)
    # a large learning rate, so that the unclipped step would leave [-c, c] by far
    model = WGAN(data_shape=(1, 28, 28), width=4, latent_dim=6, n_critic=2, clip_value=0.02,
                 discriminator_optimizer=OptimizerConfig(lr=0.5, algorithm="rmsprop"))
    assert max(p.abs().max().item() for p in model.discriminator.parameters()) > 0.1  # initial weights exceed c
    largest = []

    class AfterEachBatch(pl.Callback):
        def on_train_batch_end(self, *args):
            largest.append(max(p.abs().max().item() for p in model.discriminator.parameters()))

    quiet_trainer(max_steps=2, callbacks=[AfterEachBatch()]).fit(model, RandomImages(size=28, n=32, batch_size=8))
    assert len(largest) == 4
    assert largest == [pytest.approx(0.02)] * 4  # clipped, and the clip binds


def test_critic_steps_train_only_the_critic_and_generator_steps_only_g():
    pl.seed_everything(0)
    model = WGAN(data_shape=(1, 28, 28), width=4, latent_dim=6, n_critic=3)
    blocks = record_optimize_blocks(model, ["discriminator", "generator"])
    quiet_trainer(max_steps=2).fit(model, RandomImages(size=28, n=48, batch_size=8))
    c, g = (("discriminator",), {"discriminator"}), (("generator",), {"generator"})
    assert blocks == [c, c, c, g] * 2


def test_the_reference_codes_boosted_critic_rounds():
    """boosted_n_critic critic updates for the first boost_first generator updates and every
    boost_every-th (the reference's 100, 25, 500, scaled down), n_critic otherwise."""
    pl.seed_everything(0)
    model = WGAN(data_shape=(1, 28, 28), width=4, latent_dim=6, n_critic=2, boosted_n_critic=3, boost_first=1, boost_every=3)
    blocks = record_optimize_blocks(model, ["discriminator", "generator"])
    quiet_trainer(max_steps=5).fit(model, RandomImages(size=28, n=96, batch_size=8))
    c, g = (("discriminator",), {"discriminator"}), (("generator",), {"generator"})
    # generator updates 0 (first) and 3 (a multiple of 3) are boosted
    assert blocks == [c, c, c, g] + [c, c, g] * 2 + [c, c, c, g] + [c, c, g]


def test_defaults_are_the_papers():
    model = WGAN()
    assert model.clip_value == 0.01 and model.n_critic == 5
    assert model.boosted_n_critic is None  # Algorithm 1; the configs add the reference code's rounds
    rmsprop = OptimizerConfig(lr=5e-5, algorithm="rmsprop")
    assert model.optimized_networks == {"discriminator": rmsprop, "generator": rmsprop}


def test_learns_the_ring():
    # toy settings: RMSprop (the paper's) at 10x its lr and n_critic 2, else 1000 steps are too few.
    rmsprop = OptimizerConfig(lr=5e-4, algorithm="rmsprop")
    toy = toy_gan_arguments() | {"generator_optimizer": rmsprop, "discriminator_optimizer": rmsprop}
    # measured, seeds 0-5: 8 modes each, covariance distance / step 0's .147 .113 .078 .108 .135 .122
    assert_learns_ring(lambda: WGAN(n_critic=2, **toy), min_modes=6, max_covariance_ratio=0.25)


SPECTRAL = {
    "dcgan": (DCGAN, dict(data_shape=(1, 28, 28), width=4, discriminator_normalization="spectral"), "discriminator"),
    "wgan-gp": (WGANGP, dict(data_shape=(1, 28, 28), width=4, discriminator_normalization="spectral"), "discriminator"),
    "wgan": (WGAN, dict(data_shape=(1, 28, 28), width=4, discriminator_normalization="spectral"), "discriminator"),
    "fgan": (FGAN, dict(data_shape=(2,), width=8, discriminator_normalization="spectral"), "discriminator"),
    "lsgan": (LSGAN, dict(data_shape=(1, 28, 28), width=4, discriminator_normalization="spectral"), "discriminator"),
    "ebgan": (EBGAN, dict(data_shape=(2,), width=8, discriminator_normalization="spectral"), "discriminator"),
    "vae-gan": (VAEGAN, dict(data_shape=(1, 28, 28), width=4, discriminator_normalization="spectral"), "discriminator"),
    "idgan-sc": (IDGANSC, dict(data_shape=(1, 28, 28), width=4, discriminator_normalization="spectral"), "discriminator"),
}


@pytest.mark.parametrize("name", SPECTRAL)
def test_spectral_normalization_makes_every_discriminator_weight_spectral_norm_one(name):
    model_class, kwargs, network_name = SPECTRAL[name]
    model = model_class(**kwargs)
    network, x = getattr(model, network_name), torch.randn(4, *model.data_shape)
    for _ in range(30):  # power iterations, one per forward pass in training mode
        network(x)
    layers = [m for m in network.modules() if parametrize.is_parametrized(m, "weight")]
    assert layers
    for layer in layers:
        # torch reshapes a conv weight to (out, in·k·k) for the power iteration
        largest_singular_value = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert largest_singular_value.item() == pytest.approx(1.0, abs=0.02)
