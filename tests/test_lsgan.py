"""LSGAN: the least-squares losses with their target codes by hand, the step order, and learning on the ring."""

import pytest
import pytorch_lightning as pl
import torch

from lightning_modules import LSGAN
from lightning_modules.losses import least_squares_discriminator_loss, least_squares_generator_loss
from tests.helpers import RandomImages, assert_learns_ring, quiet_trainer, record_optimize_blocks, toy_gan_arguments

REAL_OUTPUTS, FAKE_OUTPUTS = torch.tensor([0.5, 2.0]), torch.tensor([-1.0, 0.25])


@pytest.mark.parametrize(
    "fake_target, real_target, by_hand",
    [
        # ½·mean((0.5-1)², (2-1)²) + ½·mean((-1-0)², (0.25-0)²) = ½·0.625 + ½·0.53125
        (0.0, 1.0, 0.5 * 0.625 + 0.5 * 0.53125),
        # ½·mean(0.25, 1) + ½·mean((-1+1)², (0.25+1)²) = ½·0.625 + ½·0.78125
        (-1.0, 1.0, 0.5 * 0.625 + 0.5 * 0.78125),
    ],
)
def test_discriminator_loss_by_hand(fake_target, real_target, by_hand):
    loss = least_squares_discriminator_loss(REAL_OUTPUTS, FAKE_OUTPUTS, real_target, fake_target)
    assert loss.item() == pytest.approx(by_hand)


@pytest.mark.parametrize("target, by_hand", [(1.0, 0.5 * (4.0 + 0.5625) / 2), (0.0, 0.5 * (1.0 + 0.0625) / 2)])
def test_generator_loss_by_hand(target, by_hand):
    assert least_squares_generator_loss(FAKE_OUTPUTS, target).item() == pytest.approx(by_hand)


def test_discriminator_regresses_reals_to_b_and_fakes_to_a():
    """At D's optimum for fixed outputs the loss is zero exactly when D(x) = b and D(G(z)) = a."""
    b, a = torch.full((3,), 1.0), torch.full((3,), -1.0)
    assert least_squares_discriminator_loss(b, a, real_target=1.0, fake_target=-1.0).item() == 0.0
    assert least_squares_discriminator_loss(a, b, real_target=1.0, fake_target=-1.0).item() == pytest.approx(4.0)


def test_defaults_are_the_papers_zero_one_codes():
    model = LSGAN()
    assert (model.fake_target, model.real_target, model.generator_target) == (0.0, 1.0, 1.0)


def test_discriminator_steps_train_only_d_and_generator_steps_only_g():
    pl.seed_everything(0)
    model = LSGAN(data_shape=(1, 28, 28), width=4, latent_dim=6, fake_target=-1.0, real_target=1.0, generator_target=0.0)
    blocks = record_optimize_blocks(model, ["discriminator", "generator"])
    quiet_trainer(max_steps=2).fit(model, RandomImages(size=28, n=32, batch_size=8))
    d, g = (("discriminator",), {"discriminator"}), (("generator",), {"generator"})
    assert blocks == [d, g, d, g]


def test_learns_the_ring():
    # measured, seeds 0-5: modes 7 8 8 8 5 8, covariance distance / step 0's .165 .255 .094 .281 .394 .232
    assert_learns_ring(lambda: LSGAN(**toy_gan_arguments()), min_modes=6, max_covariance_ratio=0.45)
