"""Every model trains under Lightning's mixed precision: bf16 autocast (what Ampere and Hopper GPUs
use) and float16 autocast with a GradScaler (older GPUs), both runnable on the CPU."""

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.precision import MixedPrecision

from lightning_modules import BetaVAE, OptimizerConfig
from tests.helpers import RandomImages, flat_parameters, quiet_trainer
from tests.models import MODELS

# small enough that no tiny model's gradients overflow float16: InfoGAN-SC's contrastive head takes
# gradients up to ~160 (its τ 0.07 divides the similarities), which 256 overflowed
LOSS_SCALE = 32.0


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
@pytest.mark.parametrize("case", list(MODELS))
def test_every_model_updates_its_weights_under_mixed_precision(case, precision, tmp_path):
    entry = MODELS[case]
    pl.seed_everything(0)
    model = entry.build(tmp_path)
    before = {name: flat_parameters(getattr(model, name)) for name in model.optimized_networks}
    scaler = torch.amp.GradScaler("cpu", init_scale=LOSS_SCALE) if precision == "16-mixed" else None
    plugin = MixedPrecision(precision, "cpu", scaler=scaler)
    steps = max(2, entry.all_trained_from + 1)  # e.g. InfoGAN-CR's CR discriminator trains from cr_start_step
    quiet_trainer(max_steps=steps, plugins=[plugin]).fit(model, entry.data())
    for name, weights in before.items():
        after = flat_parameters(getattr(model, name))
        assert torch.isfinite(after).all(), name
        assert not torch.equal(after, weights), f"{name} was not updated"
    if scaler is not None:
        assert scaler.get_scale() == LOSS_SCALE  # no update was skipped for an overflow


def test_the_optimizers_of_one_loss_all_unscale_by_the_scale_it_used():
    """β-VAE: encoder and decoder step on one ELBO. A loss scale that grows after every update
    (growth_interval 1) must grow after the pair of steps, not between them: otherwise the decoder's
    gradients are divided by twice the scale they were multiplied by."""

    def sgd_update_norms(plugins):
        pl.seed_everything(0)
        model = BetaVAE(data_shape=(1, 32, 32), width=4, latent_dim=4, optimizer=OptimizerConfig(algorithm="sgd", lr=1e-3))
        before = {name: flat_parameters(getattr(model, name)) for name in ("encoder", "decoder")}
        quiet_trainer(max_steps=1, plugins=plugins).fit(model, RandomImages(size=32, value_range=(0.0, 1.0)))
        return {name: (flat_parameters(getattr(model, name)) - weights).norm().item() for name, weights in before.items()}

    full_precision = sgd_update_norms([])
    scaler = torch.amp.GradScaler("cpu", init_scale=LOSS_SCALE, growth_interval=1)
    mixed = sgd_update_norms([MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    for name in full_precision:
        assert mixed[name] == pytest.approx(full_precision[name], rel=1e-2), name
    assert scaler.get_scale() == 2 * LOSS_SCALE  # one update for the one backward pass
