"""How models are put together: a mixin whose hooks wrap the model's is refused in the wrong place
among the bases, and the regularisers' losses are computations that log nothing themselves."""

from __future__ import annotations

import warnings

import pytest
import torch

from lightning_modules import AdversarialModule, BetaVAE, InfoGANCR, InfoGANSC
from lightning_modules.training.contrastive import SupervisedContrastive
from lightning_modules.training.pretrained_vae import FrozenVAE, PretrainedVAE

SOURCE = FrozenVAE("vae_checkpoint", "vae", "pretrained VAE", "configs/latent_constraints_vae_mnist.yaml", "latent_dim", BetaVAE)


def test_a_pretrained_vae_after_the_lightning_module_in_the_bases_is_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"class Late\(AdversarialModule, PretrainedVAE\): PretrainedVAE must come before .*class Late\(PretrainedVAE, \.\.\.\)"):
        class Late(AdversarialModule, PretrainedVAE, frozen_vae=SOURCE):
            pass


def test_a_pretrained_vae_model_must_say_what_it_loads():
    with pytest.raises(TypeError, match=r"Silent must say what it loads.*frozen_vae=FrozenVAE"):
        class Silent(PretrainedVAE, AdversarialModule):
            pass


def test_the_first_place_in_the_bases_with_a_source_is_accepted_and_reads_the_keys_it_names():
    class Early(PretrainedVAE, AdversarialModule, frozen_vae=SOURCE):
        pass

    assert Early.frozen_vae.hparams_key == "vae_hparams"  # the key the shipped models' checkpoints hold


@pytest.mark.parametrize("model, loss", [
    (InfoGANCR(code_dim=3, noise_dim=2), lambda model: model.cr_loss(6)),
    (InfoGANSC(code_dim=3, noise_dim=2, contrastive=SupervisedContrastive(num_pairs=6, representation_dim=8)), lambda model: model.contrastive_loss()),
])
def test_a_regulariser_loss_logs_nothing_and_needs_no_trainer(model, loss):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # self.log without a trainer warns
        value, measured = loss(model)
    assert value.dim() == 0 and torch.isfinite(value)
    # what the step logs for it, returned instead: E's separation diagnostics, or H's accuracy in [0, 1]
    values = list(measured.values()) if isinstance(measured, dict) else [measured]
    assert values and all(v.dim() == 0 and torch.isfinite(v) for v in values)
    assert isinstance(measured, dict) or 0.0 <= measured.item() <= 1.0
