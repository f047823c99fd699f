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


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("image_size,channels", [(28, 1), (32, 1), (64, 3)])
def test_the_spatial_broadcast_decoder_gives_every_pixel_the_whole_code_and_its_place(image_size, channels, padding):
    """Watters et al. 2019: each output pixel is a function of the whole code and of its (x, y)
    (the paper's valid convolutions, and the quick start's same-padded ones)."""
    from lightning_modules.nets import SpatialBroadcastDecoder

    torch.manual_seed(0)
    decoder = SpatialBroadcastDecoder(5, image_size, channels, width=8, layers=3, padding=padding)
    latent = torch.randn(4, 5, requires_grad=True)
    image = decoder(latent)
    assert image.shape == (4, channels, image_size, image_size)
    for row, col in [(0, 0), (image_size // 2, 3), (image_size - 1, image_size - 1)]:
        (grad,) = torch.autograd.grad(image[0, 0, row, col], latent, retain_graph=True)
        assert (grad[0] != 0).all() and (grad[1:] == 0).all()  # all of its own code, nothing of the others'
    blank = decoder(torch.zeros(1, 5))
    assert blank.std() > 1e-3  # the same code draws differently at different places


def test_a_beta_vae_with_a_spatial_broadcast_decoder_comes_back_from_its_checkpoint(tmp_path):
    from lightning_modules import BetaVAE
    from lightning_modules.nets import SpatialBroadcastDecoder
    from tests.helpers import quiet_trainer
    from datamodules import DSpritesDataModule

    model = BetaVAE(
        latent_dim=3, data_shape=(1, 32, 32), width=4, decoder="spatial_broadcast", broadcast_layers=3, broadcast_padding="same"
    )
    data = DSpritesDataModule(source="procedural", batch_size=8, value_range=(0.0, 1.0), image_size=32)
    trainer = quiet_trainer(max_steps=2, default_root_dir=tmp_path)
    trainer.fit(model, data)
    trainer.save_checkpoint(tmp_path / "vae.ckpt")
    restored = BetaVAE.load_from_checkpoint(tmp_path / "vae.ckpt")
    assert isinstance(restored.decoder, SpatialBroadcastDecoder)
    convolutions = [m for m in restored.decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.padding for m in convolutions] == [(1, 1)] * 3 + [(0, 0)]  # 3 same-padded 3x3, then the 1x1 output
    code = torch.randn(2, 3)
    torch.testing.assert_close(restored.eval().generate(code), model.eval().generate(code))
