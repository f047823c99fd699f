"""DisentanglementEvaluation: every key logged at the cadence and at the end of fit; clear errors."""

import math

import pytest
from pytorch_lightning.loggers import Logger

from callbacks import DisentanglementEvaluation
from datamodules import DSpritesDataModule
from lightning_modules import DCGAN, BetaVAE
from tests.helpers import METRIC_SIZES, RandomImages, TinyAutoencoder, quiet_trainer

KEYS = ("beta_vae", "factor_vae", "mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness")


class RecordingLogger(Logger):
    """Keeps every (step, metrics) it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[tuple[int, dict]] = []

    name, version = "recording", 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.logged.append((step, dict(metrics)))


def test_every_score_is_logged_under_the_protocol_at_the_cadence_and_the_end(tmp_path):
    logger = RecordingLogger()
    callback = DisentanglementEvaluation(sizes=METRIC_SIZES, every_n_steps=2, batch_size=64)
    trainer = quiet_trainer(max_steps=3, logger=logger, default_root_dir=tmp_path, callbacks=[callback])
    beta_vae = BetaVAE(latent_dim=5, width=4)  # a tiny β-VAE on procedural dSprites, its posterior means scored
    trainer.fit(beta_vae, DSpritesDataModule(source="procedural", batch_size=8, value_range=(0.0, 1.0)))
    evaluations = [(step, m) for step, m in logger.logged if any(k.startswith("disentanglement/") for k in m)]
    assert [step for step, _ in evaluations] == [2, 3]
    for _, metrics in evaluations:
        assert set(metrics) == {f"disentanglement/disentanglement_lib/{key}" for key in KEYS}
        assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in metrics.values())
    assert callback.scores == evaluations[-1][1]
    key = "disentanglement/disentanglement_lib/mig"
    assert trainer.callback_metrics[key].item() == pytest.approx(callback.scores[key])


def test_the_protocol_is_in_the_keys(tmp_path):
    logger = RecordingLogger()
    callback = DisentanglementEvaluation(metrics=["factor_vae"], protocol="infogan_cr", every_n_steps=10,
                                         sizes={"factor_vae": {"num_train": 20, "batch_size": 8, "num_variance_estimate": 100}})
    trainer = quiet_trainer(max_steps=1, logger=logger, default_root_dir=tmp_path, callbacks=[callback])
    trainer.fit(TinyAutoencoder(image_size=64), DSpritesDataModule(source="procedural", batch_size=8))
    assert list(callback.scores) == ["disentanglement/infogan_cr/factor_vae"]


def test_a_model_without_an_encoder_or_data_without_factors_is_refused(tmp_path):
    trainer = quiet_trainer(max_steps=1, default_root_dir=tmp_path, callbacks=[DisentanglementEvaluation()])
    with pytest.raises(TypeError, match="DCGAN has none"):
        trainer.fit(DCGAN(data_shape=(1, 64, 64), width=4, latent_dim=5), DSpritesDataModule(source="procedural", batch_size=8))
    trainer = quiet_trainer(max_steps=1, default_root_dir=tmp_path, callbacks=[DisentanglementEvaluation()])
    with pytest.raises(TypeError, match="RandomImages has none"):
        trainer.fit(TinyAutoencoder(), RandomImages(size=28))
    with pytest.raises(ValueError, match="not among the metrics"):
        DisentanglementEvaluation(metrics=["mig"], sizes={"dci": {"num_train": 10}})
