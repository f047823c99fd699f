"""Stop at an epoch end, resume from the checkpoint, and land on the uninterrupted run's weights."""

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_modules import DCGAN, EBGAN, FGAN, IDGANSC, LSGAN, WGAN, WGANGP, BetaVAE, FactorVAE, InfoGANCR
from tests.helpers import RandomImages, quiet_trainer

SMALL_GAN = dict(image_size=32, channels=1, width=4, latent_dim=6)
SHAPED_GAN = dict(data_shape=(1, 32, 32), width=4, latent_dim=6)
SIGNED, UNIT = (-1.0, 1.0), (0.0, 1.0)
# model class, its arguments, the data's (image size, value range, number of images): 8 images a batch
CASES = {
    "dcgan-ema": (DCGAN, dict(SMALL_GAN, ema_decay=0.9), (32, SIGNED, 48)),
    "wgan-gp": (WGANGP, dict(SMALL_GAN, n_critic=4), (32, SIGNED, 48)),
    "beta-vae": (BetaVAE, dict(image_size=32, channels=1, width=4, latent_dim=4), (32, UNIT, 48)),
    "idgan-sc-prior": (
        IDGANSC,
        dict(code_source="prior", image_size=32, channels=1, width=4, code_dim=3, noise_dim=2, num_pairs=8, representation_dim=8),
        (32, UNIT, 48),
    ),
    # CR switches on mid-run (step 4), so the schedule must resume with the step count
    "infogan-cr": (InfoGANCR, dict(cr_start_step=4), (64, UNIT, 24)),
    "factor-vae": (FactorVAE, dict(width=4, discriminator_hidden=(8,)), (64, UNIT, 24)),
    "fgan": (FGAN, dict(SHAPED_GAN, divergence="jensen_shannon"), (32, SIGNED, 48)),
    "lsgan": (LSGAN, SHAPED_GAN, (32, SIGNED, 48)),
    "ebgan": (EBGAN, dict(SHAPED_GAN, code_dim=8), (32, SIGNED, 48)),
    "wgan": (WGAN, dict(SHAPED_GAN, n_critic=4), (32, SIGNED, 48)),
}


def train(case, epochs, tmp_path, ckpt_path=None):
    model_class, kwargs, (size, value_range, n) = CASES[case]
    pl.seed_everything(0)
    model = model_class(**kwargs)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = quiet_trainer(max_epochs=epochs, enable_checkpointing=True, callbacks=[checkpoint])
    trainer.fit(model, RandomImages(size=size, n=n, batch_size=8, value_range=value_range), ckpt_path=ckpt_path)
    return model, trainer


@pytest.mark.parametrize("case", list(CASES))
def test_resume_reproduces_the_uninterrupted_weights(tmp_path, case):
    uninterrupted, _ = train(case, 2, tmp_path / "a")

    train(case, 1, tmp_path / "b")
    torch.manual_seed(12345)  # whatever the process did in between must not matter
    resumed, trainer = train(case, 2, tmp_path / "b", ckpt_path="last")

    assert trainer.fit_loop.epoch_loop.total_batch_idx + 1 == 2 * CASES[case][2][2] // 8
    expected, actual = uninterrupted.state_dict(), resumed.state_dict()
    assert expected.keys() == actual.keys()
    assert any("sampling_network_ema" in key for key in actual) == case.endswith("ema")
    different = [key for key in expected if not torch.equal(expected[key], actual[key])]
    assert not different, f"weights differ after resume: {different[:5]}"
