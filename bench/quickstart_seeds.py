"""The quick start over several seeds: its two commands as the README types them, plus ``--seed_everything``.

For each seed it prints the wall times, the disentanglement scores each run printed at its end, and
what each code dimension carries, in stage one (the β-VAE's) and in stage two (the codes G is given
and Q reads: the distiller's, turned by stage two's ``code_rotation``), whose axes are the traversal
rows the user sees. For every dimension used (KL to the prior ≥ 0.1 nats on 3,000 sprites), it
gives |corr| of the posterior mean with posX, posY and scale, and its mutual information with shape
over H(shape) (the code in 20 equal-width bins). A position
dimension's *turn* is atan(|corr with the other axis| / |corr with its own|): 0° is a row that moves
the sprite straight along x or y, 45° a diagonal row. The README's quick-start figures come from here:

    python -m bench.quickstart_seeds                      # seeds 0, 1, 2 (about 13 minutes on 2 idle cores)
    python -m bench.quickstart_seeds --seeds 1 --keep runs/seeds   # keep the run folders (images, checkpoints)
    python -m bench.quickstart_seeds --dry-run            # print the commands, run nothing

A seed's two commands run one after the other in a scratch folder (``--keep``: a folder of your
choice), with the thread count torch picks unless ``OMP_NUM_THREADS`` is set: another thread count
changes the order of float sums, so it is another run.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from sklearn.metrics import mutual_info_score

from bench.readme_times import ROOT, command_env, machine

STAGE_ONE, STAGE_TWO = ROOT / "configs/quickstart_stage_one.yaml", ROOT / "configs/quickstart.yaml"
SCORES = re.compile(r"^step \d+: beta_vae .*$", re.MULTILINE)  # the line the end-of-fit evaluation prints
MIN_KL = 0.1  # nats: the quick start's traversal leaves dimensions under it out
NUM_SPRITES, NUM_BINS = 3000, 20


def commands(seed: int, folder: Path) -> list[tuple[str, list[str]]]:
    """The two commands of one seed, each writing under ``folder``."""
    fit = [sys.executable, "-m", "lightning_modules", "fit"]
    seeded = ["--seed_everything", str(seed)]  # after --config, which would set it back
    one, two = folder / "quickstart_stage_one", folder / "quickstart"
    return [
        ("stage one", [*fit, "--config", str(STAGE_ONE), *seeded, "--trainer.default_root_dir", str(one)]),
        ("stage two", [*fit, "--config", str(STAGE_TWO), *seeded, "--trainer.default_root_dir", str(two),
                       "--model.init_args.distiller_checkpoint", str(one / "checkpoints/last.ckpt")]),
    ]


def run(command: list[str], log: Path) -> tuple[float, str]:
    """(wall seconds, the last score line printed) of one command; its output goes to ``log``.

    Raises:
        RuntimeError: the command failed (its log's last lines in the message).
    """
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=command_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    log.write_text(done.stdout)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-15:])
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode} (log {log}):\n{tail}")
    scores = SCORES.findall(done.stdout)
    return seconds, scores[-1] if scores else "(no score line)"


def code_axes(run: Path) -> list[str]:
    """What each used code dimension of a quick-start run's model (its last checkpoint, of the class
    its ``config.yaml`` names) carries, on 3,000 sprites of the data that config names."""
    import lightning_modules
    from datamodules import DSpritesDataModule

    config = yaml.safe_load((run / "config.yaml").read_text())
    model_class = getattr(lightning_modules, config["model"]["class_path"].rpartition(".")[2])
    model = model_class.load_from_checkpoint(run / "checkpoints/last.ckpt", map_location="cpu").eval()
    data = config["data"]["init_args"]
    truth = DSpritesDataModule(**{k: v for k, v in data.items() if k != "root"}).ground_truth
    factors = truth.sample_factors(NUM_SPRITES, torch.Generator().manual_seed(1))
    with torch.no_grad():
        images = truth.images_for(factors)
        codes, kl = model.encode(images).numpy(), model.code_kl(images).numpy()
    return describe_axes(codes, kl, {name: factors[:, truth.factor_names.index(name)].numpy() for name in truth.factor_names})


def describe_axes(codes: np.ndarray, kl: np.ndarray, factors: dict[str, np.ndarray]) -> list[str]:
    """One line per code dimension with KL ≥ 0.1 nats, largest KL first (the module docstring).

    Args:
        codes: posterior means [n, d].
        kl: each dimension's KL to the prior in nats [d].
        factors: "posX", "posY", "scale" and "shape" classes, each [n].
    """
    rows = []
    for dim in np.argsort(-kl):
        if kl[dim] < MIN_KL:
            continue
        code = codes[:, dim]
        corr = {name: abs(float(np.corrcoef(code, factors[name])[0, 1])) for name in ("posX", "posY", "scale")}
        edges = np.linspace(code.min(), code.max(), NUM_BINS + 1)[1:-1]
        shape = mutual_info_score(factors["shape"], np.digitize(code, edges)) / mutual_info_score(factors["shape"], factors["shape"])
        main = max(corr, key=corr.get)
        turn = ""
        if main in ("posX", "posY"):
            other = corr["posY" if main == "posX" else "posX"]
            turn = f", turned {math.degrees(math.atan2(other, corr[main])):.0f}°"
        carries = main if corr[main] >= shape else "shape"
        rows.append(f"{carries} (KL {kl[dim]:.1f}: x {corr['posX']:.2f} y {corr['posY']:.2f} scale {corr['scale']:.2f} "
                    f"shape {shape:.2f}{turn if carries == main else ''})")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--keep", type=Path, help="write the runs here (default: a scratch folder, deleted)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and the machine, run nothing")
    args = parser.parse_args(argv)
    print(f"{time.strftime('%Y-%m-%d')}, {machine()}, torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    with tempfile.TemporaryDirectory() as scratch:
        base = args.keep.resolve() if args.keep else Path(scratch)
        for seed in args.seeds:
            folder = base / f"seed{seed}"
            if args.dry_run:
                for name, command in commands(seed, folder):
                    print(f"seed {seed}, {name}: {' '.join(command)}")
                continue
            folder.mkdir(parents=True, exist_ok=True)
            (one, scores_one), (two, scores_two) = (run(command, folder / f"{name.replace(' ', '_')}.log") for name, command in commands(seed, folder))
            print(f"seed {seed}: stage one {one:.0f} s, stage two {two:.0f} s wall")
            for stage, scores, run_folder in (("one", scores_one, "quickstart_stage_one"), ("two", scores_two, "quickstart")):
                print(f"  stage {stage}: {scores}")
                for row in code_axes(folder / run_folder):
                    print(f"    {row}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
