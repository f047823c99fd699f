"""EBGAN: energy, margin hinge and pulling-away term by hand, the step order, and learning on the ring."""

import pytest
import pytorch_lightning as pl
import torch

from lightning_modules import EBGAN
from lightning_modules.losses import energy_discriminator_loss, pulling_away_term, reconstruction_energy
from tests.helpers import RandomImages, assert_learns_ring, quiet_trainer, record_optimize_blocks, toy_gan_arguments

def test_energy_is_each_samples_mean_squared_error():
    data = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    reconstruction = torch.tensor([[0.0, 0.0], [3.0, -1.0]])
    assert reconstruction_energy(data, reconstruction).tolist() == pytest.approx([(1 + 4) / 2, (9 + 1) / 2])

def test_margin_hinge_by_hand():
    real = torch.tensor([0.5, 1.5])
    fake = torch.tensor([0.2, 3.0], requires_grad=True)
    # mean(real) + mean([1 - 0.2]^+, [1 - 3]^+) = 1 + (0.8 + 0) / 2
    loss = energy_discriminator_loss(real, fake, margin=1.0)
    assert loss.item() == pytest.approx(1.4)
    loss.backward()
    # the hinge pushes up the fake energy below the margin; the one above it gets no gradient
    assert fake.grad.tolist() == [-0.5, 0.0]

def test_hinge_is_inactive_when_every_fake_energy_exceeds_the_margin():
    real, fake = torch.tensor([0.5, 1.5]), torch.tensor([2.0, 3.0])
    assert energy_discriminator_loss(real, fake, margin=1.0).item() == pytest.approx(1.0)
    assert energy_discriminator_loss(real, fake, margin=2.5).item() == pytest.approx(1.0 + (0.5 + 0) / 2)

def test_pulling_away_term_by_hand():
    codes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # squared cosines of the pairs: (1,2) 0, (1,3) ½, (2,3) ½; each counted twice over N(N-1) = 6
    assert pulling_away_term(codes).item() == pytest.approx(2 * (0 + 0.5 + 0.5) / 6)
    assert pulling_away_term(5 * codes).item() == pytest.approx(1 / 3)  # scale-free
    assert pulling_away_term(torch.eye(4)).item() == 0.0  # orthogonal codes: nothing to pull apart
    assert pulling_away_term(torch.ones(4, 3)).item() == pytest.approx(1.0)  # identical codes: the maximum

def test_pulling_away_term_of_a_batch_of_one_is_zero_with_zero_gradient():
    # no distinct pairs: the term is defined as 0 (not 0/0), still part of the graph
    codes = torch.tensor([[1.0, 2.0]], requires_grad=True)
    term = pulling_away_term(codes)
    term.backward()
    assert term.item() == 0.0 and codes.grad.tolist() == [[0.0, 0.0]]

def test_discriminator_is_an_autoencoder_whose_energy_is_its_reconstruction_error():
    model = EBGAN(data_shape=(2,), width=8, code_dim=3)
    x = torch.randn(5, 2)
    energy, code = model.discriminator(x)
    assert code.shape == (5, 3)
    expected = reconstruction_energy(x, model.discriminator.decoder(model.discriminator.encoder(x)))
    assert torch.allclose(energy, expected)

@pytest.mark.parametrize("pulling_away_weight", [0.0, 0.1])
def test_discriminator_steps_train_only_d_and_generator_steps_only_g(pulling_away_weight):
    pl.seed_everything(0)
    model = EBGAN(data_shape=(1, 28, 28), width=4, latent_dim=6, code_dim=8, pulling_away_weight=pulling_away_weight)
    blocks = record_optimize_blocks(model, ["discriminator", "generator"])
    trainer = quiet_trainer(max_steps=2)
    trainer.fit(model, RandomImages(size=28, n=32, batch_size=8))
    d, g = (("discriminator",), {"discriminator"}), (("generator",), {"generator"})
    assert blocks == [d, g, d, g]
    assert 0 < trainer.callback_metrics["train/pulling_away"] <= 1

def test_learns_the_ring():
    # measured, seeds 0-5: modes 7 8 8 4 8 5, covariance distance / step 0's .225 .052 .156 .529 .248 .400
    assert_learns_ring(lambda: EBGAN(code_dim=8, **toy_gan_arguments()), min_modes=4, max_covariance_ratio=0.6)
