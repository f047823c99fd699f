"""Latent constraints (Engel et al. 2017): the losses and the gated residual by hand, what the critic
sees, the frozen VAE and its hand-over through checkpoints, and that the conditional actor learns
to produce codes of the asked class."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from sklearn.linear_model import LogisticRegression
from torchvision.io import read_image

from datamodules import LabelsDataModule
from lightning_modules import BetaVAE, LatentConstraints, OptimizerConfig
from lightning_modules.training.latents import gated_residual
from lightning_modules.losses import latent_distance_penalty, realism_critic_loss
from metrics import moment_distance
from tests.helpers import flat_parameters, over_seeds, quiet_trainer, record_optimize_blocks
from tests.labelled_regions import RegionImages, region_images

TINY = dict(latent_dim=4, data_shape=(1, 28, 28), hidden=(16,))


def write_vae(path, latent_dim=4, steps=1, lr=2e-4, seed=0):
    """A σ = 0.1 Gaussian β-VAE (β = 1) on the labelled-region images, saved after ``steps`` steps from ``seed``."""
    pl.seed_everything(seed)
    vae = BetaVAE(
        latent_dim=latent_dim, beta=1.0, likelihood="gaussian", decoder_std=0.1, data_shape=(1, 28, 28), width=4,
        optimizer=OptimizerConfig(lr=lr, betas=(0.9, 0.999)),
    )
    trainer = quiet_trainer(max_steps=steps)
    trainer.fit(vae, RegionImages(n=512, batch_size=64))
    trainer.save_checkpoint(path)
    return str(path), vae


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory):
    return write_vae(tmp_path_factory.mktemp("vae") / "vae.ckpt")


# ----------------------------------------------------------------------- losses by hand
def test_distance_penalty_by_hand():
    # (1/σ̄²) log(1 + (z' - z)²) summed over dimensions, averaged over the batch; σ̄ = (0.5, 1):
    # sample 1 moves 1 in dim 0: log 2 / 0.25; sample 2 moves 1 in dim 1 and 2 in dim 0: log 2 + log 5 / 0.25
    z = torch.zeros(2, 2)
    transformed = torch.tensor([[1.0, 0.0], [2.0, 1.0]])
    penalty = latent_distance_penalty(transformed, z, torch.tensor([0.5, 1.0]))
    assert penalty.item() == pytest.approx((4 * math.log(2) + math.log(2) + 4 * math.log(5)) / 2, rel=1e-6)
    assert latent_distance_penalty(z, z, torch.tensor([0.5, 1.0])).item() == 0.0


def test_realism_critic_loss_by_hand():
    # real codes are class 1, prior samples and actor outputs class 0: softplus(-l) for real, softplus(l) for fake
    real, prior, actor = torch.tensor([[0.0], [2.0]]), torch.tensor([[0.0]]), torch.tensor([[-1.0], [1.0]])
    expected = (math.log(2) + math.log(1 + math.exp(-2))) / 2 + math.log(2) + (math.log(1 + math.exp(-1)) + math.log(1 + math.e)) / 2
    assert realism_critic_loss(real, prior, actor).item() == pytest.approx(expected, rel=1e-6)


def test_gated_residual_by_hand():
    z = torch.tensor([[1.0, -2.0]])
    proposal = torch.tensor([[5.0, 3.0]])
    closed, open_, half = (gated_residual(z, torch.cat([torch.full((1, 2), g), proposal], 1)) for g in (-1e4, 1e4, 0.0))
    assert torch.equal(closed, z)  # gate 0: z' = z
    assert torch.equal(open_, proposal)  # gate 1: z' = dz
    assert torch.allclose(half, torch.tensor([[3.0, 0.5]]))  # gate ½: the midpoint
    # per dimension: g = sigmoid(log 3) = ¾ in dim 0 only
    mixed = gated_residual(z, torch.tensor([[math.log(3), -1e4, 5.0, 3.0]]))
    assert torch.allclose(mixed, torch.tensor([[0.25 * 1 + 0.75 * 5, -2.0]]))


# ------------------------------------------------------------------------------ training
def test_critic_sees_posterior_codes_as_real_and_prior_and_actor_codes_as_fake(tiny_vae, monkeypatch):
    path, _ = tiny_vae
    model = LatentConstraints(vae_checkpoint=path, n_critic=100, **TINY)
    real_codes = torch.full((8, 4), 7.0)
    monkeypatch.setattr(model, "posterior_codes", lambda x: (real_codes, torch.ones(4)))
    calls = []  # (input codes, labels, logits) of each critic call

    def recording_forward(z, labels, forward=model.critic.forward):
        calls.append((z.detach().clone(), labels, forward(z, labels)))
        return calls[-1][2]

    monkeypatch.setattr(model.critic, "forward", recording_forward)
    seen = []
    import lightning_modules.latent_constraints as module

    def recording_loss(*logits):
        seen.extend(logits)
        return realism_critic_loss(*logits)

    monkeypatch.setattr(module, "realism_critic_loss", recording_loss)
    quiet_trainer(max_epochs=1).fit(model, RegionImages(n=8, batch_size=8))  # one critic step

    (real, labels, _), (prior, _, _), (transformed, _, _) = calls[:3]
    assert torch.equal(real, real_codes)
    assert abs(prior.mean()) < 1 and 0.5 < prior.std() < 1.5  # fresh N(0, I) samples
    with torch.no_grad():
        assert torch.allclose(transformed, model.actor(prior, labels))  # the actor's codes of those samples
    assert labels.shape == (8, 10) and torch.equal(labels.sum(1), torch.ones(8))  # one-hot digits
    # the loss's (real, prior, actor) logits are the critic's on exactly those codes
    assert all(logits is call[2] for logits, call in zip(seen, calls[:3]))


def test_posterior_codes_sample_q_and_average_its_std(tiny_vae):
    from lightning_modules.training.latents import gaussian_posterior

    path, vae = tiny_vae
    model = LatentConstraints(vae_checkpoint=path, **TINY)
    model.setup("fit")
    x = region_images(4, seed=3)[0].repeat(500, 1, 1, 1)
    codes, encoder_std = model.posterior_codes(x)
    with torch.no_grad():
        mean, log_var = gaussian_posterior(vae.eval().encoder, x[:4])
    assert torch.allclose(encoder_std, (0.5 * log_var).exp().mean(0), rtol=1e-5)  # σ̄_z per dimension
    samples = codes.view(500, 4, -1)
    assert torch.allclose(samples.mean(0), mean, atol=0.2)  # σ ≈ 1 here: 4 standard errors of 500 samples
    assert torch.allclose(samples.std(0), (0.5 * log_var).exp(), rtol=0.15)


def test_actor_steps_every_n_critic_steps_and_the_vae_stays_frozen(tiny_vae):
    path, vae = tiny_vae
    model = LatentConstraints(vae_checkpoint=path, n_critic=3, **TINY)
    blocks = record_optimize_blocks(model, ["critic", "actor"])
    quiet_trainer(max_steps=2).fit(model, RegionImages(n=48, batch_size=8))
    assert [names for names, _ in blocks] == [("critic",)] * 3 + [("actor",)] + [("critic",)] * 3 + [("actor",)]
    assert all(changed == set(names) for names, changed in blocks)  # each block moved its own network only
    assert model.global_step == 2  # actor updates
    assert torch.equal(flat_parameters(model.vae), flat_parameters(vae))
    buffers = dict(model.vae.named_buffers())
    assert all(torch.equal(buffers[name], value) for name, value in vae.named_buffers())  # batch norm statistics too


def test_the_checkpoint_embeds_the_vae_so_resuming_needs_no_file(tiny_vae, tmp_path):
    path, vae = tiny_vae
    model = LatentConstraints(vae_checkpoint=path, n_critic=2, **TINY)
    trainer = quiet_trainer(max_steps=1, enable_checkpointing=True, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    trainer.fit(model, RegionImages(n=16, batch_size=8))
    elsewhere = {**TINY, "n_critic": 2, "vae_checkpoint": str(tmp_path / "gone.ckpt")}
    restored = LatentConstraints.load_from_checkpoint(tmp_path / "last.ckpt", **elsewhere)
    assert torch.equal(flat_parameters(restored.vae), flat_parameters(vae))
    resumed = LatentConstraints(**elsewhere)
    quiet_trainer(max_steps=2).fit(resumed, RegionImages(n=16, batch_size=8), ckpt_path=tmp_path / "last.ckpt")
    assert resumed.global_step == 2
    assert torch.equal(flat_parameters(resumed.vae), flat_parameters(vae))


def test_a_missing_or_mismatched_vae_is_refused_naming_the_fix(tiny_vae, tmp_path):
    path, _ = tiny_vae
    with pytest.raises(FileNotFoundError, match=r"absent\.ckpt.*latent_constraints_vae_mnist\.yaml"):
        quiet_trainer(max_steps=1).fit(LatentConstraints(vae_checkpoint=str(tmp_path / "absent.ckpt"), **TINY), RegionImages(n=8, batch_size=8))
    with pytest.raises(ValueError, match=r"code of size 4 but latent_dim=6.*latent_dim=4"):
        quiet_trainer(max_steps=1).fit(LatentConstraints(vae_checkpoint=path, **{**TINY, "latent_dim": 6}), RegionImages(n=8, batch_size=8))


def test_predict_decodes_images_for_the_given_labels(tiny_vae, tmp_path):
    path, _ = tiny_vae
    model = LatentConstraints(vae_checkpoint=path, **TINY)
    model.setup("predict")
    predictions = quiet_trainer(default_root_dir=tmp_path).predict(model, LabelsDataModule(labels=[0, 9], samples_per_label=3))
    assert [p["samples"].shape for p in predictions] == [(6, 1, 28, 28)]
    assert predictions[0]["labels"].tolist() == [0, 0, 0, 9, 9, 9]
    assert 0.0 <= predictions[0]["samples"].min() and predictions[0]["samples"].max() <= 1.0


# ------------------------------------------------------------------------------ learning
def test_the_conditional_actor_produces_codes_of_the_asked_class(tmp_path):
    """A VAE trained briefly on images whose class is the bright region; a logistic regression on its
    posterior means of labelled images tells the classes apart. After training the actor alone, it
    assigns the actor's codes for class k to class k far more often than chance (10%)."""

    def measure(seed):
        path, vae = write_vae(tmp_path / f"vae{seed}.ckpt", latent_dim=8, steps=50, lr=2e-3, seed=seed)
        images, labels = region_images(512, seed=0)
        with torch.no_grad():
            classifier = LogisticRegression(max_iter=1000).fit(vae.eval().encode(images).numpy(), labels.numpy())

        def accuracy(model):
            asked = torch.arange(1000) % 10
            with torch.no_grad():
                codes = model.transform(torch.randn(1000, 8, generator=torch.Generator().manual_seed(1)), asked)
            return (classifier.predict(codes.numpy()) == asked.numpy()).mean()

        pl.seed_everything(seed)
        fast = OptimizerConfig(lr=3e-3, betas=(0.5, 0.9))
        # λ_dist 0.01: this VAE's σ̄ ≈ 0.45 makes the reference 0.1 hold z' close to z (measured accuracy 0.32)
        model = LatentConstraints(
            vae_checkpoint=path, latent_dim=8, data_shape=(1, 28, 28), hidden=(64, 64), n_critic=3, distance_weight=0.01,
            actor_optimizer=fast, critic_optimizer=fast,
        )
        model.setup("fit")
        before = accuracy(model)
        quiet_trainer(max_steps=150).fit(model, RegionImages(n=512, batch_size=128))
        assert torch.equal(flat_parameters(model.vae), flat_parameters(vae))
        return {"before": before, "after": accuracy(model)}

    median = over_seeds(measure)
    # measured, seeds 0-5: before .108 .100 .113 .093 .106 .104, after .979 .935 .785 .883 .234 .846
    assert median["before"] < 0.2
    assert median["after"] > 0.5


def test_the_documented_predict_command_writes_the_images(tiny_vae, tmp_path, monkeypatch):
    """``fit`` then ``predict --data datamodules.LabelsDataModule`` through the CLI, as the module's
    docstring tells (tiny networks, fake MNIST, and a VAE file that is gone by predict time). The
    predict command is the README's, on the shipped config: its FID callbacks, which score in fit,
    validate and test, need no Inception weights for predict (no network here)."""
    import shutil
    import urllib.error

    from lightning_modules.cli import main
    from tests.helpers import with_tiny_evaluations, write_mnist

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "urlopen", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.chdir(tmp_path)
    shutil.copy(tiny_vae[0], tmp_path / "vae.ckpt")
    write_mnist(tmp_path / "mnist", "train", n=24, compress=False)
    shipped = Path(__file__).resolve().parents[1] / "configs" / "latent_constraints_mnist.yaml"
    config = str(with_tiny_evaluations(shipped, tmp_path))
    tiny = ["--model.init_args.latent_dim=4", "--model.init_args.hidden=[8]", "--trainer.accelerator=cpu", "--trainer.logger=false",
            "--trainer.enable_progress_bar=false"]
    main(["fit", "--config", config, *tiny, f"--model.init_args.vae_checkpoint={tmp_path / 'vae.ckpt'}", "--model.init_args.n_critic=2",
          "--trainer.max_steps=2", f"--data.init_args.root={tmp_path / 'mnist'}", "--data.init_args.val_size=4",
          "--data.init_args.batch_size=4", "--data.init_args.num_workers=0"])
    (tmp_path / "vae.ckpt").unlink()
    main(["predict", "--config", str(shipped), *tiny, "--ckpt_path", "runs/latent_constraints_mnist/checkpoints/last.ckpt",
          "--data", "datamodules.LabelsDataModule", "--data.labels=[0, 9]", "--data.samples_per_label=3"])
    grid = read_image(str(tmp_path / "runs" / "latent_constraints_mnist" / "predictions" / "samples_batch0000_rank0.png"))
    assert grid.shape[1:] == (2 + 30, 2 + 6 * 30)  # 6 images of 28 px (padding 2) in one row of nrow=8


def test_the_unconditional_actor_moves_prior_samples_toward_the_posterior_codes(tmp_path):
    """label_kind "none": G(z) and D(z) alone (the realism constraint). The actor's codes end closer
    in mean and covariance to the VAE's posterior codes q(z|x) than the prior samples it starts from."""

    def measure(seed):
        path, vae = write_vae(tmp_path / f"vae{seed}.ckpt", latent_dim=8, steps=50, lr=2e-3, seed=seed)
        images, _ = region_images(512, seed=0)
        with torch.no_grad():
            posterior = vae.eval().encode(images)
        prior = torch.randn(2000, 8, generator=torch.Generator().manual_seed(1))

        pl.seed_everything(seed)
        fast = OptimizerConfig(lr=3e-3, betas=(0.5, 0.9))
        model = LatentConstraints(
            vae_checkpoint=path, latent_dim=8, data_shape=(1, 28, 28), label_kind="none", hidden=(64, 64), n_critic=3,
            distance_weight=0.01, actor_optimizer=fast, critic_optimizer=fast,
        )
        assert model.actor.net[0].in_features == 8 and model.critic.net[0].in_features == 8  # no y
        quiet_trainer(max_steps=150).fit(model, RegionImages(n=512, batch_size=128))
        assert model.sample(4).shape == (4, 1, 28, 28)
        with torch.no_grad():
            transformed = model.transform(prior, torch.zeros(2000))
        before, after = moment_distance(prior, posterior), moment_distance(transformed, posterior)
        return {"mean_ratio": after["mean_distance"] / before["mean_distance"],
                "covariance_ratio": after["covariance_distance"] / before["covariance_distance"]}

    median = over_seeds(measure)
    # measured, seeds 0-5 (distance to the posterior codes after / before): mean .374 .162 .367 .364 1.082 .219,
    # covariance .681 .671 .694 .700 .795 .634
    assert median["mean_ratio"] < 0.6
    assert median["covariance_ratio"] < 0.8
