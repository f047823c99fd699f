"""VAE and CVAE: the KL annealing schedule by hand and in training, the CVAE's conditioning (its
ELBO against a hand computation, and a decoder that draws the asked class), its sampling API."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from datamodules import LabelsDataModule
from lightning_modules import CVAE, BetaVAE, FactorVAE, KLAnnealing, OptimizerConfig
from tests.helpers import RandomImages, over_seeds, quiet_trainer
from tests.labelled_regions import RegionImages, brightest_region

UNIT = (0.0, 1.0)


# --------------------------------------------------------------------------- KL annealing
@pytest.mark.parametrize(
    "annealing, factors",
    [
        (KLAnnealing(), {0: 1.0, 7: 1.0}),
        (KLAnnealing("linear", warmup_steps=4), {0: 0.0, 1: 0.25, 2: 0.5, 3: 0.75, 4: 1.0, 100: 1.0}),
        # cycles of 4 steps, rising over the first 2 of each
        (KLAnnealing("cyclical", warmup_steps=2, cycle_steps=4), {0: 0.0, 1: 0.5, 2: 1.0, 3: 1.0, 4: 0.0, 5: 0.5, 6: 1.0, 9: 0.5}),
        # up to 3 over 2 steps, held, down to 1 by step 6, held after the last point
        (KLAnnealing("piecewise", points=[(0, 0.0), (2, 3.0), (4, 3.0), (6, 1.0)]), {0: 0.0, 1: 1.5, 2: 3.0, 4: 3.0, 5: 2.0, 6: 1.0, 100: 1.0}),
    ],
)
def test_kl_annealing_factors_by_hand(annealing, factors):
    assert {step: annealing.factor(step) for step in factors} == factors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(schedule="piecewise"), "points go with schedule 'piecewise' and only with it"),
        (dict(schedule="linear", warmup_steps=4, points=[(0, 1.0)]), "points go with schedule 'piecewise' and only with it"),
        (dict(schedule="piecewise", points=[]), "increasing steps"),
        (dict(schedule="piecewise", points=[(10, 1.0), (5, 2.0)]), r"increasing steps and factors >= 0, got \[\(10, 1.0\), \(5, 2.0\)\]"),
        (dict(schedule="piecewise", points=[(0, -1.0)]), "factors >= 0"),
    ],
)
def test_a_piecewise_schedule_needs_ordered_points(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KLAnnealing(**kwargs)


def test_a_cyclical_schedule_needs_a_warmup_within_its_cycle():
    with pytest.raises(ValueError, match="0 < warmup_steps <= cycle_steps"):
        KLAnnealing("cyclical", warmup_steps=5, cycle_steps=4)
    with pytest.raises(ValueError, match="cycle_steps=None"):
        KLAnnealing("cyclical", warmup_steps=5)


class LoggedKLWeights(Callback):
    def __init__(self):
        self.weights = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights.append(float(trainer.callback_metrics["train/kl_weight"]))


@pytest.mark.parametrize("model_class", [BetaVAE, CVAE])
def test_the_kl_weight_in_training_follows_the_schedule(model_class):
    pl.seed_everything(0)
    model = model_class(data_shape=(1, 28, 28), width=4, latent_dim=3, beta=2.0, kl_annealing=KLAnnealing("linear", warmup_steps=4))
    terms, losses = [], []
    negative_elbo_terms, manual_backward = model.negative_elbo_terms, model.manual_backward

    def recording_terms(x, y):
        reconstruction, kl = negative_elbo_terms(x, y)
        terms.append((reconstruction.item(), kl.item()))
        return reconstruction, kl

    def recording_backward(loss, *args, **kwargs):
        losses.append(loss.item())
        return manual_backward(loss, *args, **kwargs)

    model.negative_elbo_terms, model.manual_backward = recording_terms, recording_backward
    logged = LoggedKLWeights()
    quiet_trainer(max_steps=6, callbacks=[logged]).fit(model, RegionImages(n=48, batch_size=8))
    expected = [2.0 * w for w in (0.0, 0.25, 0.5, 0.75, 1.0, 1.0)]  # β times the schedule at steps 0..5
    assert logged.weights == expected
    used = [loss - reconstruction for loss, (reconstruction, _) in zip(losses, terms)]  # = weight · KL, to float32 precision of a loss ~500
    assert used == pytest.approx([w * kl for w, (_, kl) in zip(expected, terms)], abs=1e-3)
    assert all(kl > 0 for _, kl in terms)


def test_factor_vae_anneals_its_kl_weight_too():
    model = FactorVAE(width=4, discriminator_hidden=(8,), kl_annealing=KLAnnealing("linear", warmup_steps=2))
    logged = LoggedKLWeights()
    quiet_trainer(max_steps=3, callbacks=[logged]).fit(model, RandomImages(size=64, n=24, value_range=UNIT))
    assert logged.weights == [0.0, 0.5, 1.0]


# ----------------------------------------------------------------------------------- CVAE
def test_cvae_negative_elbo_by_hand():
    """Sohn et al. 2015: -ELBO = -log p(x | z, y) + KL(q(z | x, y) || N(0, I)), z = μ + σ ε, with the
    labels one-hot, appended to x as constant channels and to z."""
    torch.manual_seed(0)
    model = CVAE(data_shape=(1, 28, 28), width=4, latent_dim=2, num_labels=3).eval()
    x = torch.rand(2, 1, 28, 28)
    y = torch.tensor([2, 0])
    one_hot = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    torch.manual_seed(1)
    reconstruction, kl = model.negative_elbo_terms(x, y)

    label_maps = one_hot[:, :, None, None] * torch.ones(2, 3, 28, 28)
    mean, log_var = model.encoder(torch.cat([x, label_maps], 1)).chunk(2, dim=1)
    torch.manual_seed(1)
    z = mean + torch.randn(2, 2) * torch.exp(0.5 * log_var)
    logits = model.decoder(torch.cat([z, one_hot], 1))
    p = torch.sigmoid(logits)
    expected_nll = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum((1, 2, 3)).mean()
    expected_kl = sum(
        0.5 * (m**2 + math.exp(v) - v - 1) for row_m, row_v in zip(mean.tolist(), log_var.tolist()) for m, v in zip(row_m, row_v)
    ) / 2
    assert reconstruction.item() == pytest.approx(expected_nll.item(), rel=1e-4)
    # abs: in float32 each term m² + e^v - v - 1 cancels terms of order 1 (rounding ~1e-7 each)
    assert kl.item() == pytest.approx(expected_kl, rel=1e-5, abs=1e-7)


def test_cvae_attribute_labels_are_vectors_of_num_labels():
    model = CVAE(data_shape=(1, 28, 28), width=4, latent_dim=2, label_kind="attributes", num_labels=4).eval()
    x, attributes = torch.rand(3, 1, 28, 28), torch.tensor([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]])
    assert model.encode(x, attributes).shape == (3, 2)
    assert model.reconstruct(x, attributes).shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match=r"\[B, 4\]"):
        model.encode(x, attributes[:, :3])
    with pytest.raises(ValueError, match="label_kind='attributes'"):
        CVAE(data_shape=(1, 28, 28), width=4).encode(x, attributes)


def test_cvae_learns_to_draw_the_asked_class():
    """Class-k images are bright in region k: after training, decoding prior samples with label k
    gives images brightest in region k, for the same z whatever the label (chance: 10%)."""

    def measure(seed):
        pl.seed_everything(seed)
        model = CVAE(data_shape=(1, 28, 28), width=8, latent_dim=4, optimizer=OptimizerConfig(lr=3e-3, betas=(0.9, 0.999)))
        quiet_trainer(max_steps=80).fit(model, RegionImages(n=512, batch_size=64))
        latent = model.sample_latent(200, torch.Generator().manual_seed(1))
        hits = []
        for label in range(10):
            with torch.no_grad(), model.evaluating():
                images = model.generate(latent, torch.full((200,), label))
            hits.append((brightest_region(images) == label).float().mean().item())
        return {"worst_class_hits": min(hits), "mean_hits": sum(hits) / 10}

    # measured, seeds 0-5: 1.0 for every class and seed (80 steps)
    assert over_seeds(measure)["worst_class_hits"] > 0.8


def test_cvae_samples_and_predicts_for_the_given_labels(tmp_path):
    from callbacks import PredictionGrid

    model = CVAE(data_shape=(1, 28, 28), width=4, latent_dim=2)
    labels = torch.tensor([3, 3, 7])
    assert model.sample(3, labels=labels).shape == (3, 1, 28, 28)
    assert model.sample(12).shape == (12, 1, 28, 28)  # labels cycle through the classes
    with pytest.raises(ValueError, match="needs 4 labels"):
        model.sample(4, labels=labels)
    # one latent: the label alone changes the image
    latent = torch.randn(1, 2).expand(2, -1)
    with torch.no_grad():
        images = model.generate(latent, torch.tensor([3, 7]))
    assert not torch.equal(images[0], images[1])

    trainer = quiet_trainer(callbacks=[PredictionGrid(nrow=4)], default_root_dir=tmp_path)
    predictions = trainer.predict(model, LabelsDataModule(labels=[1, 5, 9], samples_per_label=4, batch_size=8))
    assert [p["samples"].shape for p in predictions] == [(8, 1, 28, 28), (4, 1, 28, 28)]
    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == [
        "batch0000_rank0.pt", "batch0001_rank0.pt", "samples_batch0000_rank0.png", "samples_batch0001_rank0.png"]


def test_reconstructions_of_a_cvae_use_the_batch_labels(tmp_path):
    from callbacks import Reconstructions

    model = CVAE(data_shape=(1, 28, 28), width=4, latent_dim=2)
    callback = Reconstructions(num_images=4, pairs_per_row=2)
    quiet_trainer(max_steps=1, default_root_dir=tmp_path, callbacks=[callback]).fit(model, RegionImages(n=8, batch_size=8))
    assert (tmp_path / "images" / "reconstructions_step0000001.png").is_file()
    originals, labels = callback._originals, callback._labels
    with torch.no_grad(), model.evaluating():
        assert not torch.equal(model.reconstruct(originals, labels), model.reconstruct(originals, (labels + 1) % 10))


def test_a_cvae_builds_its_networks_once_with_room_for_the_labels(monkeypatch):
    """The CVAE is the β-VAE's networks with y as extra inputs: built once, not built and rebuilt."""
    from lightning_modules.nets import ConvEncoder, ConvGenerator

    built = []
    for network in (ConvEncoder, ConvGenerator):
        def counted(self, *args, network=network, init=network.__init__, **kwargs):
            built.append(network.__name__)
            init(self, *args, **kwargs)
        monkeypatch.setattr(network, "__init__", counted)
    model = CVAE(data_shape=(1, 28, 28), width=4, latent_dim=2, num_labels=3)
    assert sorted(built) == ["ConvEncoder", "ConvGenerator"]
    assert model.encoder.trunk[0].in_channels == 1 + 3 and model.decoder(torch.zeros(1, 2 + 3)).shape == (1, 1, 28, 28)
