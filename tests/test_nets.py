"""The network factory: one call builds image or vector networks from the data's shape."""

import pytest
import torch

from lightning_modules.nets import build_discriminator, build_encoder, build_generator


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64), (2,)])
def test_networks_map_between_latents_and_data_of_the_given_shape(shape):
    generator = build_generator(5, shape, width=8)
    discriminator = build_discriminator(shape, width=8, out_features=3)
    encoder = build_encoder(shape, out_features=4, width=8)
    x = generator(torch.randn(6, 5))
    assert x.shape == (6, *shape)
    assert discriminator(x).shape == (6, 3)
    assert discriminator.features(x).shape == (6, discriminator.feature_dim)
    assert encoder(x).shape == (6, 4)


def test_image_generators_default_to_tanh_and_vector_generators_to_unbounded_outputs():
    image = build_generator(4, (1, 28, 28), width=4)(100 * torch.randn(8, 4))
    vector = build_generator(4, (2,), width=8)(100 * torch.randn(64, 4))
    assert image.abs().max() <= 1.0
    assert vector.abs().max() > 1.0


@pytest.mark.parametrize("shape", [(1, 48, 48), (1, 28, 32), (2, 3), ()])
def test_an_unsupported_shape_is_a_clear_error(shape):
    with pytest.raises(ValueError, match="data_shape must be|image_size must be one of"):
        build_generator(4, shape)


@pytest.mark.parametrize("shape", [(1, 32, 32), (2,)])
def test_spectral_normalization_bounds_every_layer_of_the_discriminator(shape):
    discriminator = build_discriminator(shape, width=8, normalization="spectral")
    for _ in range(50):  # power iterations run in training mode
        discriminator(torch.randn(4, *shape))
    discriminator.eval()
    weights = [m.weight for m in discriminator.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    assert weights
    for weight in weights:
        assert torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2).item() == pytest.approx(1.0, abs=0.05)
