"""Reproducing the paper: a config over seeds (one folder per seed, one W&B group), the scores every
run leaves on disk, and the report (Table 3 with floor rows, Fig. 3) read back from those runs."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import yaml

from lightning_modules.cli import report, resolved_config, seeds
from tests.helpers import TINY_DISENTANGLEMENT, evaluations

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STEPS = 4
TINY_CONTRASTIVE = {"contrastive": {"num_pairs": 8, "representation_dim": 8}}
MODELS = {"idgan_sc_prior_dsprites": {"width": 4, **TINY_CONTRASTIVE}, "beta_vae_dsprites": {"width": 4}}


def tiny_config(name: str, tmp_path: Path, configs: Path = CONFIGS, model: dict | None = None) -> Path:
    """A shipped config (``configs/<name>.yaml``; ``model``: its model's tiny sizes, by default
    ``MODELS[name]``) at a few steps and tiny sizes, scoring itself at step 0 (the floor) and at the
    end; the curve's score also at step 2. The disentanglement_lib suite is cut to its two cheapest
    scores (seconds, not minutes, on a loaded CPU)."""
    config = resolved_config(configs / f"{name}.yaml")
    config["trainer"].update(max_steps=STEPS, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False)
    for callback in evaluations(config):
        arguments = callback["init_args"]
        if arguments["protocol"] == "disentanglement_lib":
            arguments.update(metrics=["mig", "sap"], every_n_steps=None)
        else:
            arguments.update(every_n_steps=2)
        arguments.update(at_start=True, batch_size=64, sizes={metric: TINY_DISENTANGLEMENT[metric] for metric in arguments["metrics"]})
    for key, value in (MODELS[name] if model is None else model).items():  # a group (contrastive) merged, not replaced
        arguments = config["model"]["init_args"]
        arguments[key] = {**arguments[key], **value} if isinstance(value, dict) and key in arguments else value
    config["data"]["init_args"].update(source="procedural", batch_size=8, num_workers=0)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def scores(folder: Path) -> list[dict]:
    with open(folder / "scores.csv", newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Each model over seeds 0 and 1 with the seeds command, in a fresh working folder."""
    tmp_path = tmp_path_factory.mktemp("paper")
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        for name in MODELS:
            command = ["fit", "--config", str(tiny_config(name, tmp_path)), "--trainer.logger.init_args.notes=from seed {seed}"]
            assert seeds.main(["--seeds", "0", "1", "--", *command]) == 0
    finally:
        os.chdir(here)
    return tmp_path / "runs"


def test_each_seed_runs_in_its_own_folder_grouped_in_wandb(runs):
    for name in MODELS:
        for seed in (0, 1):
            folder = runs / name / f"seed_{seed}"
            saved = yaml.safe_load((folder / "config.yaml").read_text())
            assert saved["seed_everything"] == seed and saved["trainer"]["default_root_dir"] == f"runs/{name}/seed_{seed}"
            logger = saved["trainer"]["logger"]["init_args"]
            assert (logger["group"], logger["name"], logger["save_dir"]) == (name, f"{name}-seed_{seed}", f"runs/{name}/seed_{seed}")
            assert logger["notes"] == f"from seed {seed}"  # {seed} in the command is the seed
            assert (folder / "checkpoints" / "last.ckpt").is_file() and list((folder / "wandb").glob("offline-run-*"))
    # the seeds give different runs
    first, second = (scores(runs / "beta_vae_dsprites" / f"seed_{seed}") for seed in (0, 1))
    assert [row["value"] for row in first] != [row["value"] for row in second]


def test_every_evaluation_is_a_row_of_scores_csv_with_its_step(runs):
    rows = scores(runs / "idgan_sc_prior_dsprites" / "seed_0")
    steps = {}
    for row in rows:
        steps.setdefault(row["key"], []).append(int(row["step"]))
    assert steps["disentanglement/infogan_cr/factor_vae"] == [0, 2, 4]
    assert steps["disentanglement/disentanglement_lib/mig"] == steps["disentanglement/disentanglement_lib/sap"] == [0, 4]
    assert len(steps) == 3
    assert all(0.0 <= float(row["value"]) <= 1.0 for row in rows)


def test_report_writes_table_3_with_floor_rows_and_fig_3(runs, tmp_path):
    out = tmp_path / "report"
    assert report.main([str(runs / name) for name in MODELS] + ["--out", str(out), "--paper"]) == 0
    table = list(csv.DictReader(open(out / "table3.csv", newline="")))

    def cell(model, row, protocol, score):
        (found,) = [r for r in table if (r["model"], r["row"], r["protocol"], r["score"]) == (model, row, protocol, score)]
        return found

    # the mean ± std over the two seeds of each run's last evaluation, and of its step-0 one (the floor)
    for row, step in (("trained", STEPS), ("floor", 0)):
        values = [float(r["value"]) for seed in (0, 1) for r in scores(runs / "beta_vae_dsprites" / f"seed_{seed}")
                  if r["key"] == "disentanglement/disentanglement_lib/mig" and int(r["step"]) == step]
        found = cell("beta_vae_dsprites", row, "disentanglement_lib", "mig")
        assert int(found["n"]) == 2
        assert float(found["mean"]) == pytest.approx(np.mean(values), abs=1e-6)
        assert float(found["std"]) == pytest.approx(np.std(values, ddof=1), abs=1e-6)
    paper = cell("idgan_sc_prior_dsprites", "trained", "infogan_cr", "factor_vae")
    assert (float(paper["paper_mean"]), float(paper["paper_std"])) == (0.90, 0.01)  # IDGAN-SC without β-VAE
    assert cell("beta_vae_dsprites", "trained", "infogan_cr", "factor_vae")["paper_mean"] == ""  # not in the paper

    markdown = (out / "table3.md").read_text()
    assert "## Protocol `infogan_cr`" in markdown and "## Protocol `disentanglement_lib`" in markdown
    assert "| *floor:* idgan_sc_prior_dsprites untrained |" in markdown and " (2) |" in markdown
    figure = __import__("matplotlib.image", fromlist=["imread"]).imread(out / "fig3.png")
    assert figure.shape[0] > 300 and len(np.unique(figure.reshape(-1, figure.shape[-1]), axis=0)) > 10  # drawn, not blank


def test_report_reports_a_crashed_run_and_a_missing_score_and_goes_on(runs, tmp_path):
    model = tmp_path / "beta_vae_dsprites"
    for seed in (0, 1):
        shutil.copytree(runs / "beta_vae_dsprites" / f"seed_{seed}", model / f"seed_{seed}", ignore=shutil.ignore_patterns("*.ckpt", "wandb"))
    crashed = model / "seed_2"  # crashed after its step-0 evaluation
    crashed.mkdir()
    shutil.copy(model / "seed_0" / "config.yaml", crashed / "config.yaml")
    rows = scores(model / "seed_0")
    write_rows(crashed / "scores.csv", [row for row in rows if row["step"] == "0"])
    never = model / "seed_3"  # crashed before any evaluation
    never.mkdir()
    shutil.copy(model / "seed_0" / "config.yaml", never / "config.yaml")
    write_rows(model / "seed_1" / "scores.csv",  # its last mig is missing
               [row for row in scores(model / "seed_1") if not (row["key"].endswith("/mig") and row["step"] == str(STEPS))])

    out = tmp_path / "report"
    assert report.main([str(model), "--out", str(out)]) == 0
    markdown = (out / "table3.md").read_text()
    assert f"seed_2: last scores at step 0 of {STEPS}" in markdown
    assert "seed_3: no scores.csv" in markdown
    assert f"seed_1: no disentanglement/disentanglement_lib/mig at its last step {STEPS}" in markdown
    table = list(csv.DictReader(open(out / "table3.csv", newline="")))
    n = {(r["row"], r["protocol"], r["score"]): int(r["n"]) for r in table}
    assert n[("trained", "disentanglement_lib", "mig")] == 1 and n[("trained", "disentanglement_lib", "sap")] == 2
    assert n[("floor", "disentanglement_lib", "mig")] == 3  # the crashed run's step 0 still counts


def write_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, ["step", "key", "value"])
        writer.writeheader()
        writer.writerows(rows)


def test_run_per_seed_needs_an_integer_seed(tmp_path, monkeypatch, capsys):
    from lightning_modules.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / "beta_vae_dsprites.yaml"), "--seed_everything=false", "--run_per_seed=true"])
    assert exit_info.value.code == 2
    assert "--run_per_seed names the run folder after seed_everything, which is False: pass an integer" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name, epochs", [("infogan_dsprites", 28), ("infogan_cr_dsprites", 28), ("idgan_sc_dsprites", 28),
                                          ("idgan_sc_prior_dsprites", 28), ("beta_vae_dsprites", 50)])
def test_paper_scale_configs_train_the_papers_number_of_iterations(name, epochs):
    """The paper's epochs are passes over all 737,280 dSprites images in batches of 64 (11,520 iterations;
    28 epochs = 322,560): counted in steps, since the datamodule's training split is smaller by its
    validation hold-out, so max_epochs would stop short."""
    trainer = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["trainer"]
    data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["data"]["init_args"]
    assert data["batch_size"] == 64
    assert trainer.get("max_steps") == epochs * 737_280 // 64
    assert trainer.get("max_epochs") in (None, -1)


#: configs/small/: Table 3's models (and IDGAN-SC's stage one) at tiny sizes, keyed by config name.
SMALL = {"beta_vae": {"width": 4}, "infogan": {"broadcast_width": 4}, "infogan_cr": {"broadcast_width": 4, "cr_start_step": 2},
         "idgan_sc_prior": {"broadcast_width": 4, **TINY_CONTRASTIVE},
         "factor_vae": {"width": 4, "discriminator_hidden": [8]},
         "idgan_sc": {"width": 4, **TINY_CONTRASTIVE}}


def run_small_protocol(tmp_path: Path, seeds: str, broken: str | None = None) -> subprocess.CompletedProcess:
    """configs/small/run.sh as a user runs it, its configs cut to tiny sizes, over ``seeds``; the
    config ``broken`` (a name) given a latent size no run accepts."""
    protocol = tmp_path / "configs" / "small"
    protocol.mkdir(parents=True)
    for name, model in SMALL.items():
        path = tiny_config(name, protocol, configs=CONFIGS / "small", model=model)
        if name == broken:
            config = yaml.safe_load(path.read_text())
            config["model"]["init_args"]["latent_dim"] = 0
            path.write_text(yaml.safe_dump(config))
    shutil.copy(CONFIGS / "small" / "run.sh", protocol)
    environment = {**os.environ, "SEEDS": seeds, "PYTHONPATH": str(CONFIGS.parent), "WANDB_MODE": "offline"}
    return subprocess.run(["bash", str(protocol / "run.sh")], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_small_scale_protocol_runs_every_model_over_seeds_then_the_report(tmp_path):
    """configs/small/run.sh (two seeds): every model's seeds in its lane, IDGAN-SC's stage two on
    its own seed's distiller, then Table 3 and Fig. 3 of all of them."""
    result = run_small_protocol(tmp_path, "0 1")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "report: 12 runs" in result.stdout
    lanes = {line[:4] for line in result.stdout.splitlines() if "Trainer" in line or "step " in line}
    assert lanes == {"[A] ", "[B] "}  # every line of the runs names its lane

    runs = tmp_path / "runs" / "small"
    for seed in (0, 1):
        stage_two = yaml.safe_load((runs / "idgan_sc" / f"seed_{seed}" / "config.yaml").read_text())
        assert stage_two["model"]["init_args"]["distiller_checkpoint"] == f"runs/small/beta_vae/seed_{seed}/checkpoints/last.ckpt"
        arm = yaml.safe_load((runs / "idgan_sc_prior" / f"seed_{seed}" / "config.yaml").read_text())
        assert arm["model"]["init_args"]["warm_start"] == f"runs/small/infogan/seed_{seed}/checkpoints/last.ckpt"
    table = list(csv.DictReader(open(tmp_path / "report_small" / "table3.csv", newline="")))
    for name in SMALL:
        for protocol_name, score in (("infogan_cr", "factor_vae"), ("disentanglement_lib", "mig")):
            rows = {r["row"]: r for r in table if (r["model"], r["protocol"], r["score"]) == (name, protocol_name, score)}
            # the ablation's arm continues InfoGAN: its step 0 is the warm start, its floor InfoGAN's row
            floors = {} if name == "idgan_sc_prior" else {"floor": 2}
            assert {row: int(r["n"]) for row, r in rows.items()} == {"trained": 2, **floors}, (name, protocol_name, rows)
    paper = {r["model"]: r["paper_mean"] for r in table if (r["row"], r["protocol"], r["score"]) == ("trained", "infogan_cr", "factor_vae")}
    assert paper == {"beta_vae": "", "infogan": "0.82", "infogan_cr": "0.88", "idgan_sc_prior": "0.9", "factor_vae": "0.82", "idgan_sc": "0.91"}
    assert (tmp_path / "report_small" / "fig3.png").stat().st_size > 10_000
    assert "- idgan_sc_prior: warm-started (its step 0 is the model it continues, not an untrained one) — no floor row" in (
        tmp_path / "report_small" / "table3.md").read_text()


@pytest.mark.slow
def test_a_failed_run_of_the_small_scale_protocol_is_reported_and_the_rest_go_on(tmp_path):
    """Stage one fails (a bad config): stage two, which needs its distiller, fails too; FactorVAE after
    them in lane A and all of lane B still run, the report covers what finished, and the exit status is 1."""
    result = run_small_protocol(tmp_path, "0", broken="beta_vae")
    assert result.returncode == 1
    failures = [line for line in result.stdout.splitlines() if "seeds: 1 of 1 runs failed" in line]
    assert failures == ["[A] seeds: 1 of 1 runs failed (seeds 0)"] * 2, result.stdout[-4000:]  # stage one, then stage two
    for model in ("beta_vae", "idgan_sc"):
        assert f"report: runs/small/{model}: no config.yaml (not a run folder, or the run never started); left out." in result.stderr
    table = list(csv.DictReader(open(tmp_path / "report_small" / "table3.csv", newline="")))
    assert {r["model"] for r in table} == {"factor_vae", "infogan", "infogan_cr", "idgan_sc_prior"}
    assert "report: 6 runs, 2 left out (above) ->" in result.stdout  # the count says what the table leaves out


def test_each_seed_runs_as_its_own_command_line(monkeypatch):
    """Each seed's run sees its own command as sys.argv and is parsed from it, as if typed: W&B
    records that command, and Lightning does not warn that the seeds command's arguments and the run's
    differ ("LightningCLI's args parameter is intended to run from within Python...", printed before
    every seed's run of the small-scale protocol)."""
    monkeypatch.setattr(sys, "argv", ["python -m lightning_modules.cli.seeds", "--seeds", "3", "4", "--", "fit", "--config", "x.yaml"])
    seen = []
    monkeypatch.setattr(seeds, "run_command", lambda args=None: seen.append((args, list(sys.argv))))
    assert seeds.main(sys.argv[1:]) == 0
    assert seen == [
        (None, ["python -m lightning_modules", "fit", "--config", "x.yaml", f"--seed_everything={seed}", "--run_per_seed=true"]) for seed in (3, 4)
    ]
    assert sys.argv[0] == "python -m lightning_modules.cli.seeds"  # given back after the runs
