"""Every config through the real CLI: --print_config, a fast_dev_run fit, and `--ckpt_path last`.

Bad input through the CLI is tested in test_bad_input.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

from lightning_modules import BetaVAE, InfoGAN
from lightning_modules.cli import DEFAULTS, main, resolved_config
from metrics import METRICS
from tests.helpers import (
    RandomImages,
    evaluations,
    quiet_trainer,
    with_tiny_evaluations,
    write_celeba,
    write_image_folder,
    write_mnist,
    write_mpi3d,
    write_shapes3d,
)

ROOT = Path(__file__).resolve().parents[1]
#: The runs' configs (configs/defaults.yaml is what they share).
CONFIGS = sorted(path for path in (ROOT / "configs").glob("*.yaml") if path != DEFAULTS)


def distiller_override(config: Path, tmp_path: Path) -> list[str]:
    """A model built on a pretrained β-VAE (IDGAN-SC stage two, latent constraints) gets a briefly
    trained one of the code size and image shape it expects (and, for a G that starts as its decoder, of G's architecture)."""
    model = yaml.safe_load(config.read_text())["model"]
    args = model["init_args"]
    if model["class_path"].endswith("IDGANSC") and args.get("code_source") != "prior":
        argument, latent_dim = "distiller_checkpoint", args["code_dim"]
    elif model["class_path"].endswith("LatentConstraints"):
        argument, latent_dim = "vae_checkpoint", args["latent_dim"]
    else:
        return []
    channels, size, _ = args["data_shape"]
    decoder = dict(decoder="spatial_broadcast", width=args["width"], broadcast_layers=args["broadcast_layers"],
                   broadcast_padding=args["broadcast_padding"]) if args.get("generator_init") == "distiller_decoder" else dict(width=4)
    vae = BetaVAE(latent_dim=latent_dim, data_shape=args["data_shape"], **decoder)
    trainer = quiet_trainer(max_steps=1)
    trainer.fit(vae, RandomImages(size=size, channels=channels, value_range=(0.0, 1.0)))
    trainer.save_checkpoint(tmp_path / "pretrained_vae.ckpt")
    return [f"--model.init_args.{argument}={tmp_path / 'pretrained_vae.ckpt'}"]


def warm_start_override(config: Path, tmp_path: Path) -> list[str]:
    """An ablation arm gets a one-step pre-training of its network family and settings."""
    model = yaml.safe_load(config.read_text())["model"]
    args = model["init_args"]
    if not args.get("warm_start"):
        return []
    settings = {name: args[name] for name in ("code_dim", "noise_dim", "prior", "data_shape")}
    trainer = quiet_trainer(max_steps=1)
    trainer.fit(InfoGAN(**settings), RandomImages(size=64, n=4, batch_size=4, value_range=(0.0, 1.0)))
    trainer.save_checkpoint(tmp_path / "pretraining.ckpt")
    return [f"--model.init_args.warm_start={tmp_path / 'pretraining.ckpt'}"]


def data_overrides(config: Path, tmp_path: Path) -> list[str]:
    """Point the config's datamodule at tiny data built here, with tiny batches."""
    data = yaml.safe_load(config.read_text())["data"]
    name = data["class_path"].rsplit(".", 1)[-1]
    if name == "MNISTDataModule":
        write_mnist(tmp_path / "mnist", "train", n=24, compress=False)
        return [f"--data.init_args.root={tmp_path / 'mnist'}", "--data.init_args.val_size=4"]
    if name == "CelebADataModule":
        write_celeba(tmp_path / "celeba", partition=[0] * 6 + [1, 2])
        return [f"--data.init_args.root={tmp_path / 'celeba'}"]
    if name == "LSUNBedroomsDataModule":
        write_image_folder(tmp_path / "lsun")
        return [f"--data.init_args.root={tmp_path / 'lsun'}", "--data.init_args.val_size=4"]
    if name == "Shapes3DDataModule":
        write_shapes3d(tmp_path / "3dshapes")
        return [f"--data.init_args.root={tmp_path / '3dshapes'}", "--data.init_args.val_size=8"]
    if name == "MPI3DDataModule":
        write_mpi3d(tmp_path / "mpi3d", data["init_args"]["variant"])
        return [f"--data.init_args.root={tmp_path / 'mpi3d'}", "--data.init_args.val_size=8"]
    return []


#: Sizes at which an evaluation callback of a shipped config runs in a test (seconds, not hours).
DSPRITES_ENCODERS = ["quickstart_stage_one", "quickstart", "beta_vae_dsprites", "idgan_sc_dsprites", "idgan_sc_prior_dsprites",
                     "infogan_dsprites", "infogan_cr_dsprites", "factor_vae_dsprites", "ablation_infogan_pretrain_dsprites",
                     "ablation_infogan_dsprites", "ablation_infogan_cr_dsprites", "ablation_idgan_sc_dsprites"]
#: Models with an encoder on the other datasets with known factors: disentanglement_lib's suite.
GROUND_TRUTH_ENCODERS = [f"{model}_{data}" for model in ("beta_vae", "factor_vae", "idgan_sc") for data in ("3dshapes", "mpi3d_toy")]
IMAGE_CONFIGS = [c.stem for c in CONFIGS if yaml.safe_load(c.read_text())["data"]["class_path"].rsplit(".", 1)[-1]
                 in ("MNISTDataModule", "CelebADataModule", "LSUNBedroomsDataModule")]


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_model_with_codes_or_images_is_scored_by_its_config(config):
    """dSprites models with an encoder or info head: the paper's FactorVAE-score curve and the
    disentanglement_lib suite (at least at the end); image models: a FID during training and a
    FID-10k at the end; ring models: the mixture scores."""
    resolved = resolved_config(config)
    callbacks = [(c["class_path"], c.get("init_args", {})) for c in evaluations(resolved)]
    if config.stem in DSPRITES_ENCODERS:
        protocols = {arguments["protocol"]: arguments for _, arguments in callbacks}
        assert protocols["infogan_cr"]["metrics"] == ["factor_vae"] and protocols["infogan_cr"]["every_n_steps"]
        assert sorted(protocols["disentanglement_lib"]["metrics"]) == sorted(METRICS)  # all five
    elif config.stem in GROUND_TRUTH_ENCODERS:
        ((_, arguments),) = callbacks
        assert arguments["protocol"] == "disentanglement_lib" and sorted(arguments["metrics"]) == sorted(METRICS) and arguments["at_start"]
    elif config.stem in IMAGE_CONFIGS:
        sizes = sorted((arguments["num_samples"], arguments["every_n_steps"] or 0) for _, arguments in callbacks)
        assert len(sizes) == 2 and sizes[0][0] < 10_000 and sizes[0][1] > 0 and sizes[1] == (10_000, 0), sizes
    else:
        assert callbacks == []
    # the 2-D ring models: mode coverage (scored by fit, validate and test)
    classes = [c["class_path"] for c in resolved["trainer"]["callbacks"]]
    assert ("callbacks.MixtureEvaluation" in classes) == config.stem.endswith("_ring")


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_print_config_round_trips(config, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    original = yaml.safe_load(config.read_text())
    assert printed["model"]["class_path"] == original["model"]["class_path"]
    assert_contains(printed["model"]["init_args"], original["model"]["init_args"])
    assert_contains(printed["data"]["init_args"], original["data"]["init_args"])
    # the trainer composed: configs/defaults.yaml's settings, then the file's
    defaults, trainer = yaml.safe_load(DEFAULTS.read_text())["trainer"], original["trainer"]
    for key, value in {**defaults, **trainer}.items():
        if key not in ("logger", "callbacks", "callbacks+"):
            assert printed["trainer"][key] == value, key
    assert_contains(printed["trainer"]["logger"]["init_args"], {**defaults["logger"]["init_args"], **trainer.get("logger", {}).get("init_args", {})})
    # the callbacks, every setting the config gives them: its list, or defaults.yaml's and its `callbacks+`
    callbacks = trainer.get("callbacks", defaults["callbacks"] + trainer.get("callbacks+", []))
    assert [c["class_path"] for c in printed["trainer"]["callbacks"]] == [c["class_path"] for c in callbacks]
    for shown, given in zip(printed["trainer"]["callbacks"], callbacks):
        assert_contains(shown["init_args"], given.get("init_args", {}))
    # the run's name, written once, names its W&B run and holds its files and checkpoints
    root = trainer["default_root_dir"]
    assert (printed["trainer"]["logger"]["init_args"]["name"], printed["trainer"]["logger"]["init_args"]["save_dir"]) == (Path(root).name, root)
    assert printed["trainer"]["callbacks"][0]["init_args"]["dirpath"] == f"{root}/checkpoints"
    assert printed["trainer"]["callbacks"][0]["init_args"]["every_n_train_steps"] == original.get("checkpoint_every_n_train_steps")
    # what it prints is the whole config: printed again, it is the same
    (tmp_path / "printed.yaml").write_text(yaml.safe_dump(printed))
    assert resolved_config(tmp_path / "printed.yaml") == printed


def assert_contains(printed: dict, original: dict) -> None:
    """Every value the config sets comes back (printed adds the defaults of what it leaves out)."""
    for key, value in original.items():
        if isinstance(value, dict):
            assert_contains(printed[key], value)
        else:
            assert printed[key] == value, key


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_fast_dev_run_fits(config, tmp_path, monkeypatch, caplog):
    """Every config, its evaluation callbacks included (at tiny sizes: they run at the end of fit,
    which fast_dev_run keeps)."""
    monkeypatch.chdir(tmp_path)  # the configs write under runs/
    overrides = data_overrides(config, tmp_path) + distiller_override(config, tmp_path) + warm_start_override(config, tmp_path)
    with caplog.at_level("INFO", logger="pytorch_lightning"):  # Lightning's console logger, outside pytest
        main(
            ["fit", "--config", str(with_tiny_evaluations(config, tmp_path)), "--trainer.fast_dev_run=true", "--data.init_args.batch_size=4",
             "--data.init_args.num_workers=0", "--trainer.accelerator=cpu", *overrides]
        )
    if config.stem in DSPRITES_ENCODERS + GROUND_TRUTH_ENCODERS:  # the disentanglement_lib suite is printed
        assert [m for m in caplog.messages if re.fullmatch(r"step 1: beta_vae \d\.\d{3}  factor_vae \d\.\d{3}  mig .* dci_informativeness \d\.\d{3}", m)]
    if config.stem in DSPRITES_ENCODERS:  # and the paper's curve
        assert [m for m in caplog.messages if re.fullmatch(r"step 1: factor_vae \d\.\d{3}", m)]
    if config.stem == "quickstart":  # its distilled code turned (the tiny distiller here: too few dims to turn), said once
        said = r"code_rotation=ica: .*the distiller's dims \[[\d, ]*\] \(KL ≥ 0\.5 nats on [\d,]+ training images\)"
        assert len([m for m in caplog.messages if re.match(said, m)]) == 1


@pytest.mark.parametrize("config", ["beta_vae_3dshapes", "beta_vae_mpi3d_toy", "factor_vae_dsprites"])
def test_fast_dev_run_of_a_shipped_config_as_it_is_scores_once_at_its_smallest(config, tmp_path, monkeypatch, caplog):
    """Lightning's smoke test (one batch; logging and checkpointing suppressed) of a config as
    shipped, its evaluations at their configured sizes: they run once, at the end, at their
    fast_dev_run sizes (configured, disentanglement_lib's protocol encodes ~10^6 images, minutes on
    a CPU, at step 0 and again at the end), and leave no scores.csv behind."""
    monkeypatch.chdir(tmp_path)
    shipped = ROOT / "configs" / f"{config}.yaml"
    overrides = data_overrides(shipped, tmp_path) + distiller_override(shipped, tmp_path)
    with caplog.at_level("INFO", logger="pytorch_lightning"):
        main(["fit", "--config", str(shipped), "--trainer.fast_dev_run=true", "--data.init_args.batch_size=4",
              "--data.init_args.num_workers=0", "--trainer.accelerator=cpu", *overrides])
    scored = [m for m in caplog.messages if m.startswith("step ") and "mig" in m]
    assert [m.split(":")[0] for m in scored] == ["step 1"], scored  # none at step 0, one at the end
    assert "fast_dev_run: evaluations at their smoke-test sizes" in caplog.text
    assert not list(tmp_path.rglob("scores.csv"))


DCGAN_DSPRITES = str(ROOT / "configs" / "dcgan_dsprites.yaml")


def test_ckpt_path_last_resumes_the_previous_run(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    tiny = ["--model.init_args.width=4", "--data.init_args.batch_size=8", "--data.init_args.source=procedural",
            "--data.init_args.num_workers=0", "--trainer.enable_progress_bar=false"]
    main(["fit", "--config", DCGAN_DSPRITES, *tiny, "--trainer.max_steps=2", "--ckpt_path=last"])  # nothing to resume yet
    last = tmp_path / "runs" / "dcgan_dsprites" / "checkpoints" / "last.ckpt"
    first = torch.load(last, weights_only=True)
    assert first["global_step"] == 2

    with caplog.at_level("INFO", logger="pytorch_lightning"):
        main(["fit", "--config", DCGAN_DSPRITES, *tiny, "--trainer.max_steps=4", "--ckpt_path=last"])
    assert f"Restored all states from the checkpoint at {last}" in caplog.text
    assert torch.load(last, weights_only=True)["global_step"] == 4


def test_checkpoint_cadence_changes_from_the_command_line(tmp_path, monkeypatch):
    """The README's command: --checkpoint_every_n_train_steps sets the config's RunCheckpoint cadence
    (jsonargparse cannot address one entry of trainer.callbacks), and config.yaml records it."""
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", DCGAN_DSPRITES, "--model.init_args.width=4", "--data.init_args.batch_size=8",
          "--data.init_args.source=procedural", "--data.init_args.num_workers=0", "--trainer.enable_progress_bar=false",
          "--trainer.max_steps=4", "--checkpoint_every_n_train_steps=2"])
    folder = tmp_path / "runs" / "dcgan_dsprites" / "checkpoints"
    steps = sorted(torch.load(p, weights_only=True)["global_step"] for p in folder.glob("epoch=*-step=*.ckpt"))
    assert steps == [2, 4]
    (config_file,) = (tmp_path / "runs").rglob("config.yaml")
    (checkpoint,) = [c for c in yaml.safe_load(config_file.read_text())["trainer"]["callbacks"]
                     if c["class_path"] == "callbacks.RunCheckpoint"]
    assert checkpoint["init_args"]["every_n_train_steps"] == 2


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_saves_a_resumable_last_checkpoint_and_one_on_preemption(config):
    """RunCheckpoint keeps last.ckpt (every N steps, at the end of fit, on preemption) in a fixed folder."""
    callbacks = resolved_config(config)["trainer"]["callbacks"]
    checkpoints = [c.get("init_args", {}) for c in callbacks if c["class_path"] == "callbacks.RunCheckpoint"]
    assert len(checkpoints) == 1 and checkpoints[0]["dirpath"].endswith("/checkpoints")
    assert not [c for c in callbacks if c["class_path"].endswith("ModelCheckpoint")]  # one bookkeeper of the folder


def test_a_run_records_the_software_it_ran_with(tmp_path, monkeypatch):
    """config.yaml starts with the versions (comments, so the file still parses as the config that
    ran), and every logger's hyper-parameters hold them: a number can be traced to its stack."""
    import importlib.metadata
    import platform

    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", DCGAN_DSPRITES, "--model.init_args.width=4", "--data.init_args.batch_size=8",
          "--data.init_args.source=procedural", "--data.init_args.num_workers=0", "--trainer.enable_progress_bar=false",
          "--trainer.max_steps=1", "--trainer.logger=pytorch_lightning.loggers.CSVLogger",
          "--trainer.logger.save_dir=csv", "--trainer.callbacks=[]"])
    expected = {"python": platform.python_version(), "torch": torch.__version__,
                "pytorch-lightning": importlib.metadata.version("pytorch-lightning"),
                "numpy": importlib.metadata.version("numpy"), "scikit-learn": importlib.metadata.version("scikit-learn")}
    (config_file,) = (tmp_path / "csv").rglob("config.yaml")
    text = config_file.read_text()
    for name, version in expected.items():
        assert f"\n# {name}: {version}\n" in text
    assert yaml.safe_load(text)["model"]["class_path"] == "lightning_modules.DCGAN"
    (hparams,) = (tmp_path / "csv").rglob("hparams.yaml")
    assert expected.items() <= yaml.safe_load(hparams.read_text())["versions"].items()


#: Lines of a run's first screen that no user can act on (issue 14), each silenced at its source
#: where one exists: Lightning's LitLogger advert, W&B's warnings about settings the user never set,
#: deprecations inside Lightning, a val loader that the model has no step for.
NOISE = (
    "litlogger",
    "anonymous setting has no effect",
    "git root",
    "LeafSpec",
    "skip_none",
    "You passed in a `val_dataloader` but have no `validation_step`",
    "You defined a `validation_step` but have no `val_dataloader`",
    "torchvision.io",
    "Epoch 0/-",  # rich's bar printed max_epochs - 1 of a step-based run (max_epochs -1): "Epoch 0/-2"
)


@pytest.mark.slow
def test_the_first_screen_shows_what_matters(tmp_path):
    """A tiny fit of a shipped config (W&B offline), as a subprocess: none of the noise, the
    losses in the progress bar, and a warning the user can act on is still shown (here: the
    W&B run is offline for want of a login: log in, or `wandb sync` later)."""
    import os
    import subprocess
    import sys

    (tmp_path / "netrc").write_text("")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_SILENT": "false", "COLUMNS": "300", "NETRC": str(tmp_path / "netrc")}
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "lightning_modules", "fit", "--config", DCGAN_DSPRITES, "--model.init_args.width=4",
         "--data.init_args.batch_size=8", "--data.init_args.source=procedural", "--data.init_args.num_workers=0",
         "--trainer.max_steps=3", "--trainer.log_every_n_steps=1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for noise in NOISE:
        assert noise not in output, noise
    # The losses, in the progress bar: Lightning draws it with rich when rich is installed (an
    # import-linter dependency) and with tqdm otherwise, "name: value" or "name=value".
    assert re.search(r"train/g_loss(=|: )-?\d", output) and re.search(r"train/d_loss(=|: )-?\d", output), output[-3000:]
    assert "W&B logging offline to runs/dcgan_dsprites: no W&B login" in output  # actionable: kept



@pytest.mark.parametrize(
    "override, expected",
    [
        ([], "StepRunProgressBar"),  # rich installed (import-linter's dependency): the rich bar, epoch total mended
        (["--trainer.callbacks+=TQDMProgressBar"], "TQDMProgressBar"),  # the config's own bar, not a second one
        (["--trainer.enable_progress_bar=false"], None),
    ],
    ids=["default", "config-names-a-bar", "bar-off"],
)
def test_the_cli_keeps_the_configs_progress_bar_and_mends_only_lightnings_default(override, expected, tmp_path, monkeypatch):
    """Lightning 2.6's rich bar titles a step-based run "Epoch 0/-2" (max_epochs -1); the CLI puts
    in its place a bar titled "Epoch 0" where Lightning would add its own, and nowhere else."""
    from lightning_modules.cli import CLI

    monkeypatch.chdir(tmp_path)
    tiny = ["--model.init_args.width=4", "--data.init_args.source=procedural", "--trainer.accelerator=cpu", "--trainer.max_steps=5"]
    cli = CLI(args=["--config", DCGAN_DSPRITES, *tiny, *override], run=False)
    trainer, bar = cli.trainer, cli.trainer.progress_bar_callback
    assert (type(bar).__name__ if bar is not None else None) == expected
    if expected == "StepRunProgressBar":
        bar.setup(trainer, cli.model, stage="fit")
        trainer.fit_loop.max_epochs = -1  # what fit sets for max_steps without max_epochs
        assert bar._get_train_description(0).strip() == "Epoch 0"
        trainer.fit_loop.max_epochs = 3  # an epoch-based run keeps Lightning's total
        assert bar._get_train_description(0).strip() == "Epoch 0/2"


def test_a_shipped_config_keeps_the_best_checkpoints_by_fid_and_wandb_summarises_every_score(tmp_path, monkeypatch):
    """dcgan_celeba.yaml with the stand-in Inception (an explicit inception_weights: no download,
    no hash check): FID-2k every step, the checkpoint at the same steps keeping the best one by
    it. The kept file is the step with the lowest logged FID (ranked by the FID of its own
    weights), last.ckpt the final state; W&B's run summary holds every score's last value."""
    import csv
    import json

    import wandb

    from metrics import save_random_inception
    from tests.helpers import wandb_records

    monkeypatch.chdir(tmp_path)
    weights = save_random_inception(tmp_path / "stand-in.pth")
    config = ROOT / "configs" / "dcgan_celeba.yaml"
    logger = [resolved_config(config)["trainer"]["logger"],
              {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": "csv"}}]
    tiny = with_tiny_evaluations(
        config, tmp_path, feature_extractor={"inception_weights": str(weights)}, **{
            "trainer.callbacks.0.init_args.every_n_train_steps": 1, "trainer.callbacks.0.init_args.save_top_k": 1,
            "trainer.callbacks.3.init_args.every_n_steps": 1, "trainer.logger": logger, "model.init_args.width": 4,
        })
    main(["fit", "--config", str(tiny), "--trainer.max_steps=3", "--trainer.enable_progress_bar=false",
          "--data.init_args.batch_size=2", "--data.init_args.num_workers=0", "--trainer.accelerator=cpu",
          *data_overrides(config, tmp_path)])

    with open(next((tmp_path / "csv").rglob("metrics.csv"))) as file:
        fid = {int(row["step"]): float(row["fid_2k/fid"]) for row in csv.DictReader(file) if row.get("fid_2k/fid")}
    assert sorted(fid) == [1, 2, 3] and len(set(fid.values())) == 3
    folder = tmp_path / "runs" / "dcgan_celeba" / "checkpoints"
    (kept,) = [p for p in folder.iterdir() if p.name != "last.ckpt"]
    assert torch.load(kept, weights_only=True)["global_step"] == min(fid, key=fid.get)
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 3

    wandb.finish()  # what the end of the process does
    (run_dir,) = (tmp_path / "runs" / "dcgan_celeba" / "wandb").glob("offline-run-*")
    summary = {}  # what the run's page shows: the summary records' updates, the latest of each key
    for record in wandb_records(run_dir):
        if record.HasField("summary"):
            summary.update({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.summary.update})
    for key in ("fid", "kid_mean", "kid_std", "precision", "recall", "is_mean", "is_std"):
        assert isinstance(summary[f"fid_10k/{key}"], (int, float)), key  # JSON writes 0.0 as 0
    assert summary["fid_2k/fid"] == pytest.approx(fid[3])


def test_a_refused_command_prints_its_problems_first_and_a_run_says_its_seed_after_the_checks(tmp_path):
    """Nothing comes before a refused command's message, not even Lightning's "Seed set to 0" (it used to be
    the first line); a command that starts still says its seed, once the checks have passed."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    common = ["--data.init_args.num_workers=0", "--model.init_args.width=4", "--data.init_args.batch_size=8",
              "--seed_everything=7"]
    refused = subprocess.run(
        [sys.executable, "-m", "lightning_modules", "fit", "--config", DCGAN_DSPRITES, "--data.init_args.source=npz",
         "--data.init_args.root=nowhere", *common],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert refused.returncode == 2, refused.stderr[-2000:]
    lines = [line for line in (refused.stdout + refused.stderr).splitlines() if line.strip()]
    assert lines[0].startswith("error: cannot start"), lines[:3]
    assert not any("Seed set" in line for line in lines), lines
    started = subprocess.run(
        [sys.executable, "-m", "lightning_modules", "fit", "--config", DCGAN_DSPRITES, "--data.init_args.source=procedural",
         "--trainer.max_steps=1", "--trainer.enable_progress_bar=false", *common],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert started.returncode == 0, started.stderr[-3000:]
    assert (started.stdout + started.stderr).count("Seed set to 7") == 1, (started.stdout + started.stderr)[-3000:]
