"""The bad-input catalogue (issues 7, 14): each bad input is ONE clear error naming the value and the
fix, and every file of the previous run in the run directory (a last.ckpt, config.yaml) is left
byte-identical. Every entry goes through the real CLI. Inputs found by the CLI's start-up checks
(``refused``) stop it before the trainer, the logger or any process starts: exit status 2, a few
lines without a traceback, no file written; several problems are reported at once.

Catalogue entry → test (here unless named otherwise):

- unknown config key (answered with the closest known one), wrong type, out-of-range value
  (optimizer lr/betas/lr_schedule/schedule_steps, batch_size, ema_decay, negative β, m < 2 pairs, τ <= 0, n_critic < 1), an
  image size no network is built for → test_bad_config_values_fail_at_parse_time_naming_the_key
- images of another size than the model's networks → test_data_of_another_size_than_the_networks
- a decaying learning-rate schedule with no horizon (no trainer.max_steps nor schedule_steps)
  → test_an_lr_schedule_without_a_horizon
- IDGAN-SC stage two with a distiller of another code size → test_a_distiller_with_another_code_size
  (a missing distiller, or a checkpoint that is not a β-VAE: test_idgan_sc.py,
  test_a_missing_distiller_names_the_file_and_stage_one, test_a_checkpoint_that_is_not_a_beta_vae_is_refused)
- the quick start's G started as a distiller's decoder of another width → test_a_generator_unlike_the_distillers_decoder
  (each architecture setting: test_idgan_sc.py, test_a_generator_unlike_the_distillers_decoder_is_refused_before_training_naming_the_settings)
- missing or truncated dataset files → test_missing_or_damaged_dataset_files
  (each reader's other damage, e.g. a bad idx magic number or gzip stream: test_datamodules.py,
  test_mnist_corrupt_files, test_mnist_missing_files, test_dsprites_missing_npz, test_celeba_missing)
- a truncated/corrupt checkpoint, one carrying a malicious pickle, or one of another model class,
  passed as --ckpt_path or found as `--ckpt_path last` → test_bad_checkpoints_are_refused
- a --ckpt_path that does not exist → test_a_checkpoint_path_that_does_not_exist
- no CelebA and no stage-one checkpoint (the card command on a fresh clone), both reported; IDGAN_DEBUG=1
  gives the traceback → test_no_data_and_no_stage_one_checkpoint_are_both_reported
- missing Inception weights → test_missing_inception_weights
- fsdp / deepspeed → test_strategies_that_cannot_train_these_models
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.dsprites import NPZ_NAME
from lightning_modules import DCGAN, BetaVAE
from lightning_modules.cli import InputError, main
from tests.helpers import RandomImages, quiet_trainer, write_celeba, write_fake_npz, write_mnist, write_shapes3d

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PROCEDURAL_DSPRITES = ["--data.init_args.source=procedural", "--data.init_args.num_workers=0"]


# -------------------------------------------------------------------- the previous run's files
def previous_run(run_dir: Path) -> dict[Path, bytes]:
    """A previous run's files in ``run_dir`` (unless already there); returns every file under it."""
    for name, content in (("checkpoints/last.ckpt", b"the previous run's last checkpoint"), ("config.yaml", b"# its config\n")):
        path = run_dir / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    return {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}


def assert_untouched(files: dict[Path, bytes]) -> None:
    for path, content in files.items():
        assert path.read_bytes() == content, f"{path} was overwritten"


def refused(args: list[str], capsys, runs: Path, files: dict[Path, bytes]) -> str:
    """Runs the CLI on ``args``, which must stop before anything starts: exit status 2, a short
    message on stderr without a traceback, no file added under ``runs`` (no run folder, W&B folder
    or config.yaml) and the previous run's files untouched. Returns the message."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    error = captured.err
    assert "error: cannot start" in error and "Traceback" not in error
    assert len((captured.out + error).splitlines()) <= 12, captured.out + error
    assert {path for path in runs.rglob("*") if path.is_file()} == set(files)
    assert_untouched(files)
    return error


def fit_args(config: str, *overrides: str) -> list[str]:
    # one step at most: a check that stops failing fails the test fast instead of training a full run
    return ["fit", "--config", str(CONFIGS / f"{config}.yaml"), "--trainer.accelerator=cpu", "--trainer.max_steps=1", *overrides]


@pytest.fixture
def in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the configs write under runs/
    return tmp_path


# ------------------------------------------------------------------------- parse-time values
@pytest.mark.parametrize(
    "config, override, message",
    [
        ("dcgan_dsprites", "--model.init_args.latnt_dim=3", "DCGAN takes no 'latnt_dim'; did you mean 'latent_dim'?"),
        ("dcgan_dsprites", "--model.init_args.latent_dim=many", "latent_dim"),
        ("dcgan_dsprites", "--model.init_args.generator_optimizer.lr=-0.001", "generator_optimizer.lr"),
        ("dcgan_dsprites", "--model.init_args.discriminator_optimizer.betas=[0.5, 1.5]", "discriminator_optimizer.betas"),
        ("dcgan_dsprites", "--data.init_args.batch_size=0", "batch_size"),
        ("dcgan_dsprites", "--model.init_args.ema_decay=1.5", "ema_decay"),
        ("dcgan_dsprites", "--model.init_args.data_shape=[1, 48, 48]", "data_shape"),
        ("dcgan_dsprites", "--model.init_args.image_size=64", "DCGAN takes no 'image_size': it was renamed; write data_shape: [channels, size, size]"),
        ("wgan_gp_celeba", "--model.init_args.critic_optimizer.lr=1e-4", "WGANGP takes no 'critic_optimizer': it was renamed; write discriminator_optimizer"),
        ("idgan_sc_dsprites", "--model.init_args.contrastive_optimizer.lr=1e-4",
         "IDGANSC takes no 'contrastive_optimizer': it was renamed; write contrastive: {optimizer: {lr: ...}}"),
        ("dcgan_dsprites", "--model.init_args.num_pairs=8", "DCGAN takes no 'num_pairs'; it takes"),  # not a rename for a model without the group
        ("beta_vae_dsprites", "--model.init_args.beta=-4", "beta"),
        ("idgan_sc_dsprites", "--model.init_args.contrastive.num_pairs=1", "contrastive.num_pairs"),
        ("idgan_sc_dsprites", "--model.init_args.contrastive.tau_positive=0", "contrastive.tau_positive"),
        ("idgan_sc_dsprites", "--model.init_args.contrastive.tau_all=-0.1", "contrastive.tau_all"),
        ("wgan_gp_celeba", "--model.init_args.n_critic=0", "n_critic"),
        ("dcgan_dsprites", "--model.init_args.generator_optimizer.lr_schedule=exponential", "generator_optimizer.lr_schedule"),
        ("dcgan_dsprites", "--model.init_args.discriminator_optimizer.schedule_steps=0", "discriminator_optimizer.schedule_steps"),
    ],
)
def test_bad_config_values_fail_at_parse_time_naming_the_key(config, override, message, in_tmp_path, capsys):
    files = previous_run(in_tmp_path / "runs" / config)
    with pytest.raises(SystemExit) as exit_info:
        main(fit_args(config, override))
    assert exit_info.value.code not in (0, None)
    error = capsys.readouterr().err
    assert message in error and override.split("=", 1)[1] in error  # names the key and the value
    assert {path for path in (in_tmp_path / "runs").rglob("*") if path.is_file()} == set(files)  # nothing started
    assert_untouched(files)


@pytest.mark.parametrize(
    "config, old, new",
    [
        ("dcgan_dsprites", "image_size: 64", "DCGAN takes no 'image_size': it was renamed; write data_shape: [channels, size, size]"),
        ("beta_vae_dsprites", "channels: 1", "BetaVAE takes no 'channels': it was renamed; write data_shape: [channels, size, size]"),
        ("wgan_celeba", "critic_optimizer: {lr: 1.0e-4}", "WGAN takes no 'critic_optimizer': it was renamed; write discriminator_optimizer"),
        ("wgan_celeba", "critic_normalization: layer", "WGAN takes no 'critic_normalization': it was renamed; write discriminator_normalization"),
        ("idgan_sc_dsprites", "num_pairs: 384", "IDGANSC takes no 'num_pairs': it was renamed; write contrastive: {num_pairs: ...}"),
        ("quickstart", "contrastive_weight: 0.2", "IDGANSC takes no 'contrastive_weight': it was renamed; write contrastive: {weight: ...}"),
        ("ablation_idgan_sc_dsprites", "contrastive_start_step: 0",
         "InfoGANSC takes no 'contrastive_start_step': it was renamed; write contrastive: {start_step: ...}"),
        ("idgan_sc_mnist", "contrastive_reduction: mean", "IDGANSC takes no 'contrastive_reduction': it was renamed; write contrastive: {reduction: ...}"),
        ("idgan_sc_celeba", "tau_positive: 0.07", "IDGANSC takes no 'tau_positive': it was renamed; write contrastive: {tau_positive: ...}"),
        ("idgan_sc_celeba", "tau_all: 0.1", "IDGANSC takes no 'tau_all': it was renamed; write contrastive: {tau_all: ...}"),
        ("idgan_sc_prior_dsprites", "representation_dim: 128",
         "IDGANSC takes no 'representation_dim': it was renamed; write contrastive: {representation_dim: ...}"),
    ],
)
def test_a_users_config_with_an_argument_of_the_old_vocabulary_is_told_the_new_name(config, old, new, in_tmp_path, capsys):
    users = in_tmp_path / "users.yaml"
    users.write_text(f"model:\n  init_args:\n    {old}\n")
    files = previous_run(in_tmp_path / "runs" / config)
    with pytest.raises(SystemExit) as exit_info:
        main(fit_args(config, "--config", str(users)))
    assert exit_info.value.code not in (0, None)
    assert new in capsys.readouterr().err
    assert_untouched(files)


# ------------------------------------------------------------------- model against its data
def test_data_of_another_size_than_the_networks(in_tmp_path, capsys):
    files = previous_run(in_tmp_path / "runs" / "dcgan_dsprites")
    error = refused(fit_args("dcgan_dsprites", "--model.init_args.data_shape=[1, 32, 32]", *PROCEDURAL_DSPRITES), capsys, in_tmp_path / "runs", files)
    assert re.search(r"shape \(1, 32, 32\) but DSpritesDataModule yields \(1, 64, 64\).*image_size", error)


def test_an_lr_schedule_without_a_horizon(in_tmp_path):
    files = previous_run(in_tmp_path / "runs" / "dcgan_dsprites")
    with pytest.raises(ValueError, match=r"generator's optimizer has lr_schedule='cosine'.*set trainer.max_steps, or that optimizer's schedule_steps"):
        main(fit_args("dcgan_dsprites", "--model.init_args.generator_optimizer.lr_schedule=cosine", "--trainer.max_steps=-1",
                      "--trainer.max_epochs=1", *PROCEDURAL_DSPRITES))
    assert_untouched(files)


def write_checkpoint(model, path: Path, value_range: tuple[float, float] = (-1.0, 1.0)) -> Path:
    """``model`` after one step on random 64x64 images, saved at ``path``."""
    trainer = quiet_trainer(max_steps=1)
    trainer.fit(model, RandomImages(size=64, value_range=value_range))
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def beta_vae_checkpoint(tmp_path_factory) -> Path:
    """A β-VAE of code size 4."""
    model = BetaVAE(latent_dim=4, data_shape=(1, 64, 64), width=4)
    return write_checkpoint(model, tmp_path_factory.mktemp("beta_vae") / "beta_vae.ckpt", value_range=(0.0, 1.0))


def test_a_distiller_with_another_code_size(in_tmp_path, beta_vae_checkpoint, capsys):
    files = previous_run(in_tmp_path / "runs" / "idgan_sc_dsprites")
    args = fit_args("idgan_sc_dsprites", f"--model.init_args.distiller_checkpoint={beta_vae_checkpoint}", *PROCEDURAL_DSPRITES)
    error = refused(args, capsys, in_tmp_path / "runs", files)
    assert "code of size 4 but code_dim=10: set model.init_args.code_dim=4" in error


def test_a_generator_unlike_the_distillers_decoder(in_tmp_path, capsys):
    """configs/quickstart.yaml starts G as the distiller's decoder: a stage one of another width is refused before anything starts."""
    vae = BetaVAE(latent_dim=6, data_shape=(1, 32, 32), width=8, decoder="spatial_broadcast", broadcast_layers=3, broadcast_padding="same")
    trainer = quiet_trainer(max_steps=1)
    trainer.fit(vae, RandomImages(size=32, value_range=(0.0, 1.0)))
    trainer.save_checkpoint(in_tmp_path / "narrow.ckpt")
    files = previous_run(in_tmp_path / "runs" / "quickstart")
    args = fit_args("quickstart", f"--model.init_args.distiller_checkpoint={in_tmp_path / 'narrow.ckpt'}", *PROCEDURAL_DSPRITES)
    error = refused(args, capsys, in_tmp_path / "runs", files)
    assert "built with width=8; G here has width=16: set model.init_args.width=8, or model.init_args.generator_init=random" in error


def test_a_code_rotation_without_the_distillers_codes(in_tmp_path, capsys):
    files = previous_run(in_tmp_path / "runs" / "idgan_sc_prior_dsprites")
    args = fit_args("idgan_sc_prior_dsprites", "--model.init_args.code_rotation=ica", *PROCEDURAL_DSPRITES)
    error = refused(args, capsys, in_tmp_path / "runs", files)
    assert "code_rotation=ica turns the distiller's codes, which this model does not use" in error
    assert "set model.init_args.code_rotation=none, or model.init_args.code_source=distiller" in error


def test_no_data_and_no_stage_one_checkpoint_are_both_reported(in_tmp_path, capsys, monkeypatch):
    """The card command on a fresh clone without a network: no CelebA, no stage-one β-VAE, and no
    Inception weights for its two FID callbacks (said once). With IDGAN_DEBUG=1 the traceback comes back."""
    import urllib.error

    import torch

    monkeypatch.setenv("TORCH_HOME", str(in_tmp_path / "torch_home"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "urlopen", no_network)
    files = previous_run(in_tmp_path / "runs" / "idgan_sc_celeba")
    args = ["fit", "--config", str(CONFIGS / "idgan_sc_celeba.yaml")]
    error = refused(args, capsys, in_tmp_path / "runs", files)
    assert "3 problems" in error and error.count("Inception weights not found") == 1
    assert "dataset not found in 'data/celeba'" in error and "list_attr_celeba.txt" in error
    assert "distiller_checkpoint='runs/beta_vae_celeba/checkpoints/last.ckpt', which does not exist" in error
    assert "--config configs/beta_vae_celeba.yaml" in error  # the stage-one config that writes it, from any folder

    monkeypatch.setenv("IDGAN_DEBUG", "1")
    with pytest.raises(InputError, match="dataset not found"):
        main(args)


def test_missing_inception_weights(in_tmp_path, capsys):
    files = previous_run(in_tmp_path / "runs" / "dcgan_dsprites")
    fid = {"class_path": "callbacks.FIDEvaluation", "init_args": {"inception_weights": str(in_tmp_path / "nowhere.pth")}}
    args = fit_args("dcgan_dsprites", *TINY_DCGAN, f"--trainer.callbacks+={json.dumps(fid)}")
    error = refused(args, capsys, in_tmp_path / "runs", files)
    assert f"Inception weights not found at '{in_tmp_path / 'nowhere.pth'}'" in error and "Union" not in error


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed"])
def test_strategies_that_cannot_train_these_models(strategy, in_tmp_path, capsys):
    files = previous_run(in_tmp_path / "runs" / "dcgan_dsprites")
    error = refused(fit_args("dcgan_dsprites", *TINY_DCGAN, f"--trainer.strategy={strategy}"), capsys, in_tmp_path / "runs", files)
    assert f"trainer.strategy '{strategy}'" in error and "use gan_ddp" in error


# ------------------------------------------------------------------------------- dataset files
def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def zero_the_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle - 100 : middle + 100] = bytes(200)
    path.write_bytes(bytes(data))


def mnist_truncated(root: Path) -> list[str]:
    write_mnist(root, "train", n=24, compress=False)
    truncate(root / "train-images-idx3-ubyte")
    return [f"--data.init_args.root={root}", "--data.init_args.val_size=4"]


def dsprites_npz(damage):
    def write(root: Path) -> list[str]:
        classes = np.array([[s, sc, 3, 4, 5] for s in range(3) for sc in range(6)], dtype=np.int64)
        write_fake_npz(root / NPZ_NAME, classes)
        damage(root / NPZ_NAME)
        return [f"--data.init_args.root={root}", "--data.init_args.source=npz", "--data.init_args.val_size=4"]

    return write


def celeba_without(name: str):
    def write(root: Path) -> list[str]:
        write_celeba(root, partition=[0] * 6 + [1, 2])
        (root / name).unlink()
        return [f"--data.init_args.root={root}"]

    return write


@pytest.mark.parametrize(
    "config, write_data, message",
    [
        ("dcgan_mnist", lambda root: [f"--data.init_args.root={root}"], r"(?s)dataset not found in '.*data'.*train-images-idx3-ubyte.*yann.lecun.com"),
        ("dcgan_mnist", mnist_truncated, r"train-images-idx3-ubyte has \d+ bytes.*truncated.*download it again"),
        ("dcgan_dsprites", dsprites_npz(truncate), rf"{NPZ_NAME} is not a readable npz \(truncated or corrupt.*download it again.*source: procedural"),
        ("dcgan_dsprites", dsprites_npz(zero_the_middle), rf"{NPZ_NAME} is not a readable npz"),
        ("dcgan_celeba", celeba_without("list_attr_celeba.txt"), r"(?s)dataset not found.*list_attr_celeba.txt.*mmlab.ie.cuhk.edu.hk"),
        ("dcgan_celeba", celeba_without("img_align_celeba/000003.jpg"), r"img_align_celeba lacks 1 of the 8 images that list_attr_celeba.txt lists, e.g. 000003.jpg: extract"),
    ],
    ids=["mnist-missing", "mnist-truncated", "dsprites-truncated", "dsprites-corrupt", "celeba-no-attributes", "celeba-image-missing"],
)
def test_missing_or_damaged_dataset_files(config, write_data, message, in_tmp_path, capsys):
    files = previous_run(in_tmp_path / "runs" / config)
    overrides = write_data(in_tmp_path / "data")
    error = refused(fit_args(config, *overrides, "--data.init_args.num_workers=0"), capsys, in_tmp_path / "runs", files)
    assert re.search(message, error)


def test_a_train_split_smaller_than_the_batch(in_tmp_path, capsys):
    """A small dataset (a 3D Shapes file of 64 images, 56 for training) with the config's batch of 64:
    the training loader drops the last incomplete batch, so it would yield nothing; said before
    anything starts, with the fix."""
    files = previous_run(in_tmp_path / "runs" / "beta_vae_3dshapes")
    write_shapes3d(in_tmp_path / "data")
    error = refused(fit_args("beta_vae_3dshapes", f"--data.init_args.root={in_tmp_path / 'data'}", "--data.init_args.val_size=8"),
                    capsys, in_tmp_path / "runs", files)
    assert re.search(r"the train split has 56 samples, fewer than its batch_size 64.*set --data.init_args.batch_size to at most 56", error), error


# -------------------------------------------------------------------------------- checkpoints
class Payload:
    """Unpickling it creates ``target``: a checkpoint can carry any code that way."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return open, (str(self.target), "w")


@pytest.fixture(scope="module")
def dcgan_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint of the tiny DCGAN that ``TINY_DCGAN`` configures."""
    model = DCGAN(latent_dim=10, data_shape=(1, 64, 64), width=4)
    return write_checkpoint(model, tmp_path_factory.mktemp("dcgan") / "dcgan.ckpt")


TINY_DCGAN = ["--model.init_args.width=4", *PROCEDURAL_DSPRITES]


@pytest.mark.parametrize("route", ["--ckpt_path=FILE", "--ckpt_path=last", "--ckpt_path=last --weights_only=false"])
@pytest.mark.parametrize("kind", ["truncated", "malicious", "beta_vae"])
def test_bad_checkpoints_are_refused(kind, route, in_tmp_path, dcgan_checkpoint, beta_vae_checkpoint, monkeypatch, capsys):
    """Also when asked to load unsafely (--weights_only=false, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD): runs never do."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    checkpoints = in_tmp_path / "runs" / "dcgan_dsprites" / "checkpoints"
    checkpoints.mkdir(parents=True)
    previous = checkpoints / "epoch=0-step=1.ckpt"
    previous.write_bytes(dcgan_checkpoint.read_bytes())
    os.utime(previous, (0, 0))  # the older one
    bad = checkpoints / ("epoch=0-step=2.ckpt" if "FILE" in route else "last.ckpt")
    target = in_tmp_path / "payload-ran"
    if kind == "truncated":
        bad.write_bytes(dcgan_checkpoint.read_bytes()[:-1000])
        message = (rf"'{re.escape(str(bad))}' is not a readable checkpoint \(truncated or corrupt\), was the save "
                   rf"interrupted\? Use the previous one, e.g. --ckpt_path={re.escape(str(checkpoints))}/\S+\.ckpt")
    elif kind == "malicious":
        checkpoint = torch.load(dcgan_checkpoint, weights_only=True)
        torch.save({**checkpoint, "payload": Payload(target)}, bad)
        torch.load(bad, weights_only=False)  # the payload works when it is allowed to run...
        assert target.exists()
        target.unlink()
        message = rf"'{re.escape(str(bad))}' is refused: it holds pickled objects other than tensors and plain values \((io|builtins).open\)"
    else:
        bad.write_bytes(beta_vae_checkpoint.read_bytes())
        message = rf"'{re.escape(str(bad))}' was written by BetaVAE, this run is DCGAN: pass a checkpoint of a DCGAN run as --ckpt_path"
    files = previous_run(checkpoints.parent)

    error = refused(fit_args("dcgan_dsprites", *TINY_DCGAN, *route.replace("FILE", str(bad)).split()), capsys, in_tmp_path / "runs", files)
    assert re.search(message, error.replace("\n    ", " "))
    assert not target.exists()  # ...and here it did not


def test_a_checkpoint_path_that_does_not_exist(in_tmp_path, capsys):
    files = previous_run(in_tmp_path / "runs" / "dcgan_dsprites")
    error = refused(fit_args("dcgan_dsprites", *TINY_DCGAN, "--ckpt_path=runs/nowhere.ckpt"), capsys, in_tmp_path / "runs", files)
    assert re.search(r"--ckpt_path 'runs/nowhere\.ckpt' does not exist .* or --ckpt_path last", error)
