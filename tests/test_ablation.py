"""The paper's §3.1 ablation (table 2): one InfoGAN pre-training, continued three ways (no
regulariser, InfoGAN-CR's, IDGAN-SC's supervised-contrastive one) from its checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_modules import DCGAN, InfoGAN, InfoGANCR, InfoGANSC
from lightning_modules.cli import main
from lightning_modules.losses import supervised_contrastive_loss
from lightning_modules.training.contrastive import SupervisedContrastive
from lightning_modules.cli import resolved_config
from tests.helpers import RandomImages, quiet_trainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ABLATION = ["ablation_infogan_pretrain_dsprites", "ablation_infogan_dsprites", "ablation_infogan_cr_dsprites",
            "ablation_idgan_sc_dsprites"]
SHARED = ("generator", "discriminator")
TINY = dict(code_dim=3, noise_dim=2, prior="gaussian")
ARMS = [(InfoGAN, {}), (InfoGANCR, dict(pairing="differ", cr_start_step=0)),
        (InfoGANSC, dict(contrastive=SupervisedContrastive(num_pairs=12, representation_dim=8, start_step=0)))]


def images():
    return RandomImages(size=64, n=16, batch_size=4, value_range=(0.0, 1.0))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """A tiny InfoGAN pre-training of 2 steps, its last.ckpt."""
    directory = tmp_path_factory.mktemp("pretrain")
    pl.seed_everything(0)
    trainer = quiet_trainer(max_steps=2, enable_checkpointing=True, callbacks=[ModelCheckpoint(dirpath=directory, save_last=True)])
    trainer.fit(InfoGAN(**TINY), images())
    return directory / "last.ckpt"


class AtTrainStart(pl.Callback):
    """Every weight and the optimizers' state when training starts (after every loading)."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.state = {key: value.clone() for key, value in pl_module.state_dict().items()}
        self.optimizer_states = [dict(optimizer.state) for optimizer in trainer.optimizers]
        self.step = trainer.global_step


def network_state(state: dict, network: str) -> dict:
    return {key: value for key, value in state.items() if key.startswith(network + ".")}


@pytest.mark.parametrize("arm, arguments", ARMS, ids=[arm.__name__ for arm, _ in ARMS])
def test_each_arm_starts_from_the_pretrained_shared_networks_and_a_fresh_head(arm, arguments, pretrained):
    saved = torch.load(pretrained, weights_only=True)["state_dict"]
    pl.seed_everything(1)
    fresh = arm(**TINY, **arguments)  # what the same seed builds without a warm start
    pl.seed_everything(1)
    model = arm(**TINY, **arguments, warm_start=str(pretrained))
    start = AtTrainStart()
    quiet_trainer(max_steps=1, callbacks=[start]).fit(model, images())

    for network in SHARED:  # exactly the checkpoint's weights (spectral norm's u, v included)
        expected = network_state(saved, network)
        assert expected and network_state(start.state, network).keys() == expected.keys()
        assert all(torch.equal(start.state[key], value) for key, value in expected.items()), network
    heads = [key for key in start.state if not key.startswith(SHARED)]
    assert (arm is InfoGAN) == (not heads)
    for key in heads:  # the regulariser's head: as initialised, not from the checkpoint
        assert key not in saved and torch.equal(start.state[key], fresh.state_dict()[key]), key
    assert start.step == 0 and all(not state for state in start.optimizer_states)  # optimizers start fresh


def test_without_a_warm_start_the_shared_networks_are_initialised_afresh(pretrained):
    saved = torch.load(pretrained, weights_only=True)["state_dict"]
    start = AtTrainStart()
    quiet_trainer(max_steps=1, callbacks=[start]).fit(InfoGAN(**TINY), images())
    assert not torch.equal(start.state["generator.0.weight"], saved["generator.0.weight"])


def test_a_resumed_arm_takes_its_own_checkpoint_and_needs_no_pretraining_file(pretrained, tmp_path):
    import shutil

    copy = tmp_path / "pretrain.ckpt"
    shutil.copy(pretrained, copy)
    model = InfoGANSC(**TINY, **ARMS[2][1], warm_start=str(copy))
    trainer = quiet_trainer(max_steps=2, enable_checkpointing=True, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)])
    trainer.fit(model, images())
    copy.unlink()  # resumed on a machine without the pre-training's file
    resumed = InfoGANSC(**TINY, **ARMS[2][1], warm_start=str(copy))
    start = AtTrainStart()
    quiet_trainer(max_steps=3, callbacks=[start]).fit(resumed, images(), ckpt_path=tmp_path / "last.ckpt")
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)["state_dict"]
    assert start.step == 2 and all(torch.equal(start.state[key], value) for key, value in saved.items())


def test_a_missing_warm_start_names_the_file_and_the_pretraining_config(tmp_path):
    model = InfoGAN(**TINY, warm_start=str(tmp_path / "absent.ckpt"))
    with pytest.raises(FileNotFoundError, match=r"absent\.ckpt.*ablation_infogan_pretrain_dsprites\.yaml"):
        quiet_trainer(max_steps=1).fit(model, images())


def test_the_regulariser_starts_at_its_step_and_trains_g_and_e_but_not_d():
    from tests.helpers import record_optimize_blocks

    pl.seed_everything(0)
    model = InfoGANSC(**TINY, contrastive=SupervisedContrastive(num_pairs=12, representation_dim=8, start_step=2))
    blocks = record_optimize_blocks(model, ["generator", "discriminator", "contrastive_head"])
    weights = []

    class Weight(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            weights.append(float(trainer.callback_metrics["train/sc_weight"]))

    trainer = quiet_trainer(max_steps=4, callbacks=[Weight()])
    trainer.fit(model, images())
    assert weights == [0.0, 0.0, 2.0, 2.0]
    d_step = (("discriminator",), {"discriminator"})
    assert blocks[:4] == [d_step, (("generator",), {"generator"})] * 2  # plain InfoGAN: E idle
    assert blocks[4:] == [d_step, (("generator", "contrastive_head"), {"generator", "contrastive_head"})] * 2
    assert math.isfinite(trainer.callback_metrics["train/sc_loss"])


def test_sc_pairs_vary_exactly_the_labelled_code_and_share_z():
    torch.manual_seed(0)
    model = InfoGANSC(**TINY)
    dims, latent_1, latent_2 = model.latent_pairs(500, "differ")
    assert torch.equal(latent_1[:, 3:], latent_2[:, 3:])
    assert torch.equal(latent_1[:, :3] != latent_2[:, :3], torch.nn.functional.one_hot(dims, 3).bool())
    assert latent_1.abs().max() > 1  # N(0, 1), not U[-1, 1]


def test_the_gaussian_prior_draws_every_latent_dimension_from_n01():
    latent = InfoGAN(**TINY).sample_latent(20000, torch.Generator().manual_seed(0))
    assert torch.allclose(latent.mean(0), torch.zeros(5), atol=0.03) and torch.allclose(latent.var(0), torch.ones(5), atol=0.05)
    with pytest.raises(ValueError, match="gap"):
        InfoGANCR(prior="gaussian", gap=0.5)


def test_the_sc_arm_uses_eq_6_with_the_configured_reduction():
    torch.manual_seed(0)
    model = InfoGANSC(**TINY, contrastive=SupervisedContrastive(num_pairs=12, representation_dim=8, reduction="sum"))
    model.eval()  # spectral norm's power iteration would move between the two computations
    torch.manual_seed(3)
    loss, _ = model.contrastive_loss()
    torch.manual_seed(3)
    dims, latent_1, latent_2 = model.latent_pairs(12, "differ")
    r = torch.nn.functional.normalize(model.contrastive_head(torch.cat([model.generator(latent_1), model.generator(latent_2)], 1)), dim=1)
    assert loss.item() == pytest.approx(supervised_contrastive_loss(r, dims, 0.07, 0.1, "sum").item(), rel=1e-5)


# --------------------------------------------------------------------------- through the CLI
def bad_checkpoints(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Warm-start files a user could name by mistake, each with the message it must get."""
    dcgan = tmp_path / "dcgan.ckpt"
    trainer = quiet_trainer(max_steps=1, enable_checkpointing=True, callbacks=[ModelCheckpoint(dirpath=tmp_path, filename="dcgan")])
    trainer.fit(DCGAN(data_shape=(1, 28, 28), width=4, latent_dim=4), RandomImages(size=28))
    other_codes = tmp_path / "codes.ckpt"
    trainer = quiet_trainer(max_steps=1, enable_checkpointing=True, callbacks=[ModelCheckpoint(dirpath=tmp_path, filename="codes")])
    trainer.fit(InfoGAN(code_dim=4, noise_dim=5, prior="gaussian"), images())
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    return {
        "missing": (str(tmp_path / "absent.ckpt"), r"warm_start='.*absent\.ckpt', which does not exist.*ablation_infogan_pretrain_dsprites\.yaml"),
        "corrupt": (str(corrupt), r"warm_start: checkpoint '.*corrupt\.ckpt' is not a readable checkpoint"),
        "another model": (str(dcgan), r"warm_start '.*dcgan\.ckpt' \(written by DCGAN\) holds no InfoGAN generator and discriminator"),
        "other settings": (str(other_codes), r"warm_start '.*codes\.ckpt' was pre-trained with code_dim=4; this run has code_dim=5: set model\.init_args\.code_dim=4"),
    }


@pytest.mark.slow
def test_a_bad_warm_start_is_refused_before_the_run_starts_with_one_message(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for case, (path, message) in bad_checkpoints(tmp_path).items():
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", "--config", str(CONFIGS / "ablation_idgan_sc_dsprites.yaml"), f"--model.init_args.warm_start={path}",
                  "--trainer.accelerator=cpu", "--data.init_args.num_workers=0"])
        assert exit_info.value.code == 2, case
        error = capsys.readouterr().err
        assert "cannot start: 1 problem" in error and __import__("re").search(message, error.replace("\n    ", " ")), (case, error)
        assert not (tmp_path / "runs").exists(), case  # nothing started


@pytest.mark.parametrize("config", ABLATION)
def test_the_ablation_configs_parse_with_the_papers_settings(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / f"{config}.yaml"), "--print_config"])
    assert exit_info.value.code in (0, None)
    arguments = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
    assert (arguments["code_dim"], arguments["noise_dim"], arguments["prior"], arguments["info_weight"]) == (5, 5, "gaussian", 0.05)
    assert (arguments["generator_optimizer"]["lr"], arguments["discriminator_optimizer"]["lr"]) == (1e-4, 2e-4)
    pretraining = "runs/ablation_infogan_pretrain_dsprites/checkpoints/last.ckpt"
    assert arguments["warm_start"] == (None if "pretrain" in config else pretraining)
    if "idgan_sc" in config:
        contrastive = arguments["contrastive"]
        assert (contrastive["num_pairs"], contrastive["weight"], contrastive["tau_positive"], contrastive["tau_all"],
                contrastive["representation_dim"], contrastive["optimizer"]["lr"], contrastive["start_step"]) == (
            384, 2.0, 0.07, 0.1, 128, 2e-4, 0)
    if "infogan_cr" in config:
        assert (arguments["cr_weight"], arguments["cr_start_step"], arguments["cr_optimizer"]["lr"]) == (2.0, 0, 2e-4)


def without_evaluations(name: str, tmp_path: Path) -> Path:
    """A shipped config without its evaluation callbacks (their runs are tested with every config in
    test_cli.py; here they would take a minute)."""
    config = resolved_config(CONFIGS / f"{name}.yaml")
    config["trainer"]["callbacks"] = [c for c in config["trainer"]["callbacks"] if not c["class_path"].endswith("Evaluation")]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_an_arm_fits_from_a_pretraining_run_of_its_config(tmp_path, monkeypatch):
    """The pre-training config writes the checkpoint the arm's config reads (both shrunk to a few steps)."""
    monkeypatch.chdir(tmp_path)
    tiny = ["--trainer.max_steps=2", "--trainer.accelerator=cpu", "--data.init_args.batch_size=4", "--data.init_args.num_workers=0",
            "--data.init_args.source=procedural", "--trainer.logger=false", "--trainer.enable_progress_bar=false"]
    main(["fit", "--config", str(without_evaluations("ablation_infogan_pretrain_dsprites", tmp_path)), *tiny])
    pretraining = torch.load(tmp_path / "runs/ablation_infogan_pretrain_dsprites/checkpoints/last.ckpt", weights_only=True)
    main(["fit", "--config", str(without_evaluations("ablation_idgan_sc_dsprites", tmp_path)), *tiny,
          "--model.init_args.contrastive.num_pairs=8"])
    arm = torch.load(tmp_path / "runs/ablation_idgan_sc_dsprites/checkpoints/last.ckpt", weights_only=True)
    assert arm["global_step"] == 2 and pretraining["global_step"] == 2
    assert any(key.startswith("contrastive_head.") for key in arm["state_dict"])
