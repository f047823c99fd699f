import math

import pytest
import torch

from lightning_modules.losses import (
    discriminator_loss,
    gradient_penalty,
    nonsaturating_generator_loss,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)


def neg_log_sigmoid(x: float) -> float:
    return -math.log(1 / (1 + math.exp(-x)))


def test_discriminator_loss_is_binary_cross_entropy_by_hand():
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([-1.0, 1.0])
    # -log D(x) on reals, -log(1 - D(G(z))) = -log sigmoid(-l) on fakes
    expected = (neg_log_sigmoid(0.0) + neg_log_sigmoid(2.0)) / 2 + (neg_log_sigmoid(1.0) + neg_log_sigmoid(-1.0)) / 2
    assert discriminator_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(1.2232998, rel=1e-6)


def test_discriminator_loss_does_not_overflow_on_confident_logits():
    loss = discriminator_loss(torch.tensor([200.0]), torch.tensor([-200.0]))
    assert loss.item() == pytest.approx(0.0, abs=1e-30)
    assert torch.isfinite(discriminator_loss(torch.tensor([-200.0]), torch.tensor([200.0])))


def test_nonsaturating_generator_loss_by_hand():
    fake = torch.tensor([0.0, 2.0])
    assert nonsaturating_generator_loss(fake).item() == pytest.approx((math.log(2) + neg_log_sigmoid(2.0)) / 2, rel=1e-6)


def test_wasserstein_losses_by_hand():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([1.0, 2.0])
    assert wasserstein_critic_loss(real, fake).item() == pytest.approx(1.5 - 2.0)
    assert wasserstein_generator_loss(fake).item() == pytest.approx(-1.5)


def test_gradient_penalty_of_a_linear_critic_is_norm_minus_one_squared():
    weight = torch.tensor([3.0, 4.0])  # ||∇C|| = 5 everywhere
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    assert gradient_penalty(lambda x: x @ weight, real, fake).item() == pytest.approx(16.0)


def test_gradient_penalty_matches_per_sample_autograd_with_one_alpha_per_sample():
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    real, fake = torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2)
    alpha = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])

    expected = []
    for i in range(5):
        point = (alpha[i] * real[i] + (1 - alpha[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(point).sum(), point)
        expected.append((grad.norm() - 1) ** 2)
    assert gradient_penalty(critic, real, fake, alpha).item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-6)

    # Without alpha it draws one U[0, 1) per sample from the global RNG.
    torch.manual_seed(1)
    drawn = gradient_penalty(critic, real, fake)
    torch.manual_seed(1)
    assert drawn.item() == pytest.approx(gradient_penalty(critic, real, fake, torch.rand(5)).item(), rel=1e-6)


def test_gradient_penalty_trains_the_critic():
    critic = torch.nn.Linear(4, 1)
    penalty = gradient_penalty(critic, torch.randn(3, 4), torch.randn(3, 4))
    penalty.backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0
