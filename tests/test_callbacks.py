"""Image callbacks: cadence, fixed noise, grid layout, PNGs under the run directory, clear errors."""

from pathlib import Path

import pytest
import torch
from torchvision.io import decode_png

from callbacks import LatentTraversal, Reconstructions, SampleGrid
from lightning_modules import DCGAN, BetaVAE, OptimizerConfig
from tests.helpers import RandomImages, TinyAutoencoder, quiet_trainer


def png(path: Path) -> torch.Tensor:
    return decode_png(torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8))


def test_grids_are_saved_at_the_cadence_and_at_the_end(tmp_path):
    trainer = quiet_trainer(max_steps=5, default_root_dir=tmp_path, callbacks=[SampleGrid(num_samples=6, nrow=3, every_n_steps=2)])
    trainer.fit(DCGAN(data_shape=(1, 28, 28), width=4, latent_dim=5), RandomImages(size=28))
    saved = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert saved == ["samples_step0000002.png", "samples_step0000004.png", "samples_step0000005.png"]
    grid = png(tmp_path / "images" / "samples_step0000005.png")
    assert grid.shape[1:] == (2 * 30 + 2, 3 * 30 + 2)  # 2 rows x 3 columns of 28 px with 2 px padding


def test_sample_grid_uses_the_same_noise_every_time():
    model = DCGAN(data_shape=(1, 28, 28), width=4, latent_dim=5)
    callback = SampleGrid(num_samples=4, seed=3)
    first, second = callback.make_grid(None, model), callback.make_grid(None, model)
    assert torch.equal(first, second)
    assert not torch.equal(first, SampleGrid(num_samples=4, seed=4).make_grid(None, model))


def test_traversal_has_one_row_per_dimension(tmp_path):
    trainer = quiet_trainer(max_steps=1, default_root_dir=tmp_path, callbacks=[LatentTraversal(dims=[0, 2], steps=3)])
    trainer.fit(DCGAN(data_shape=(1, 28, 28), width=4, latent_dim=5), RandomImages(size=28))
    assert png(tmp_path / "images" / "traversal_step0000001.png").shape[1:] == (2 * 30 + 2, 3 * 30 + 2)


def test_traversal_shows_every_code_dimension_up_to_32():
    """The CelebA β-VAE's 20-dim code: 20 rows, each one sweeping its own dimension."""
    model = BetaVAE(latent_dim=20, data_shape=(1, 28, 28), width=4)
    grid = LatentTraversal(steps=3).make_grid(None, model)
    assert grid.shape[1:] == (20 * 30 + 2, 3 * 30 + 2)
    last_row = grid[:, 19 * 30 + 2 : 20 * 30, 2:]
    assert not torch.equal(last_row[:, :, :28], last_row[:, :, 30:58])  # dimension 19 moves the image
    wide = DCGAN(data_shape=(1, 28, 28), width=4, latent_dim=100)
    assert LatentTraversal(steps=3).make_grid(None, wide).shape[1] == 32 * 30 + 2


def test_traversal_ordered_by_kl_puts_the_informative_dimensions_first_and_leaves_out_collapsed_ones(tmp_path):
    """`order: kl` (the quick start): rows by KL(q(z_j|x) || N(0, 1)) on the first training batch,
    the largest first; a dimension at the prior (KL ~0: a constant row) is left out."""
    model = BetaVAE(latent_dim=4, data_shape=(1, 28, 28), width=4, optimizer=OptimizerConfig(lr=1e-12))  # the step leaves it
    with torch.no_grad():  # q(z|x) = N((0, 1, 0, 3), I) whatever x: KL per dim 0, 0.5, 0, 4.5
        model.encoder.head.weight.zero_()
        model.encoder.head.bias.copy_(torch.tensor([0.0, 1.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0]))
    assert torch.allclose(model.code_kl(torch.rand(5, 1, 28, 28)), torch.tensor([0.0, 0.5, 0.0, 4.5]))
    trainer = quiet_trainer(max_steps=1, default_root_dir=tmp_path, callbacks=[LatentTraversal(steps=3, order="kl")])
    trainer.fit(model, RandomImages(size=28, value_range=(0.0, 1.0)))
    expected = LatentTraversal(steps=3, dims=[3, 1]).make_grid(None, model)
    grid = png(tmp_path / "images" / "traversal_step0000001.png")
    assert grid.shape[1:] == (2 * 30 + 2, 3 * 30 + 2)  # two rows: dims 3 and 1
    assert torch.equal(grid, (expected * 255 + 0.5).clamp(0, 255).to(torch.uint8))
    with pytest.raises(TypeError, match="order='kl'.*DCGAN has none: use order: index"):
        quiet_trainer(max_steps=1, callbacks=[LatentTraversal(order="kl")]).fit(
            DCGAN(data_shape=(1, 28, 28), width=4, latent_dim=5), RandomImages(size=28))


def test_reconstructions_pair_each_image_with_its_reconstruction(tmp_path):
    model = TinyAutoencoder()
    callback = Reconstructions(num_images=4, pairs_per_row=2)
    trainer = quiet_trainer(max_steps=2, default_root_dir=tmp_path, callbacks=[callback])
    trainer.fit(model, RandomImages(size=28))
    grid = png(tmp_path / "images" / "reconstructions_step0000002.png")
    assert grid.shape[1:] == (2 * 30 + 2, 4 * 30 + 2)
    # the first tile is the first original, mapped from [-1, 1] to 8-bit
    original = ((callback._originals[0, 0] + 1) / 2 * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    assert torch.equal(grid[0, 2:30, 2:30], original)


def test_reconstructions_need_a_model_with_an_encoder(tmp_path):
    trainer = quiet_trainer(max_steps=1, default_root_dir=tmp_path, callbacks=[Reconstructions()])
    with pytest.raises(TypeError, match="DCGAN has none"):
        trainer.fit(DCGAN(data_shape=(1, 28, 28), width=4, latent_dim=5), RandomImages(size=28))
