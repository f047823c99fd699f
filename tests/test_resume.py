"""Stop at an epoch end, resume from the checkpoint, and land on the uninterrupted run's weights."""

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_modules import DCGAN, WGANGP
from tests.helpers import RandomImages, quiet_trainer


def train(model_class, epochs, tmp_path, ckpt_path=None, **kwargs):
    pl.seed_everything(0)
    model = model_class(image_size=16 * 2, channels=1, width=4, latent_dim=6, **kwargs)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = quiet_trainer(max_epochs=epochs, enable_checkpointing=True, callbacks=[checkpoint])
    trainer.fit(model, RandomImages(size=32, n=48, batch_size=8), ckpt_path=ckpt_path)
    return model, trainer


@pytest.mark.parametrize(
    "model_class, kwargs", [(DCGAN, dict(ema_decay=0.9)), (WGANGP, dict(n_critic=4))], ids=["dcgan-ema", "wgan-gp"]
)
def test_resume_reproduces_the_uninterrupted_weights(tmp_path, model_class, kwargs):
    uninterrupted, _ = train(model_class, 2, tmp_path / "a", **kwargs)

    train(model_class, 1, tmp_path / "b", **kwargs)
    torch.manual_seed(12345)  # whatever the process did in between must not matter
    resumed, trainer = train(model_class, 2, tmp_path / "b", ckpt_path="last", **kwargs)

    assert trainer.fit_loop.epoch_loop.total_batch_idx + 1 == 12
    expected, actual = uninterrupted.state_dict(), resumed.state_dict()
    assert expected.keys() == actual.keys()
    assert any("sampling_network_ema" in key for key in actual) == ("ema_decay" in kwargs)
    different = [key for key in expected if not torch.equal(expected[key], actual[key])]
    assert not different, f"weights differ after resume: {different[:5]}"
