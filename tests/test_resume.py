"""Stop at an epoch end, resume from the checkpoint, and land on the uninterrupted run's weights."""

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_modules import DCGAN, IDGANSC, WGANGP, BetaVAE
from tests.helpers import RandomImages, quiet_trainer

SIGNED, UNIT = (-1.0, 1.0), (0.0, 1.0)
CASES = {
    "dcgan-ema": (lambda: DCGAN(image_size=32, channels=1, width=4, latent_dim=6, ema_decay=0.9), SIGNED),
    "wgan-gp": (lambda: WGANGP(image_size=32, channels=1, width=4, latent_dim=6, n_critic=4), SIGNED),
    "beta-vae": (lambda: BetaVAE(image_size=32, channels=1, width=4, latent_dim=4), UNIT),
    "idgan-sc-prior": (
        lambda: IDGANSC(code_source="prior", image_size=32, channels=1, width=4, code_dim=3, noise_dim=2,
                        num_pairs=8, representation_dim=8),
        UNIT,
    ),
}


def train(case, epochs, tmp_path, ckpt_path=None):
    make_model, value_range = CASES[case]
    pl.seed_everything(0)
    model = make_model()
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = quiet_trainer(max_epochs=epochs, enable_checkpointing=True, callbacks=[checkpoint])
    trainer.fit(model, RandomImages(size=32, n=48, batch_size=8, value_range=value_range), ckpt_path=ckpt_path)
    return model, trainer


@pytest.mark.parametrize("case", CASES)
def test_resume_reproduces_the_uninterrupted_weights(tmp_path, case):
    uninterrupted, _ = train(case, 2, tmp_path / "a")

    train(case, 1, tmp_path / "b")
    torch.manual_seed(12345)  # whatever the process did in between must not matter
    resumed, trainer = train(case, 2, tmp_path / "b", ckpt_path="last")

    assert trainer.fit_loop.epoch_loop.total_batch_idx + 1 == 12
    expected, actual = uninterrupted.state_dict(), resumed.state_dict()
    assert expected.keys() == actual.keys()
    assert any("sampling_network_ema" in key for key in actual) == case.endswith("ema")
    different = [key for key in expected if not torch.equal(expected[key], actual[key])]
    assert not different, f"weights differ after resume: {different[:5]}"
