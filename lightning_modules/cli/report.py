"""``python -m lightning_modules.cli.report RUN_DIR... --out DIR [--paper]``: the IDGAN-SC paper's
Table 3 and Fig. 3 from finished runs, offline.

Reads what every run leaves in its folder: ``config.yaml`` (the model, its seed and settings) and
``scores.csv`` (every evaluation callback's scores, ``step,key,value``; see
``callbacks.periodic.PeriodicCallback.publish``). A RUN_DIR may also be a folder of ``seed_<S>``
runs (``python -m lightning_modules.cli.seeds``). Runs are grouped into models by folder: the runs
``runs/<model>/seed_<S>`` are the model ``<model>``.

Writes to DIR:
- ``table3.md`` and ``table3.csv``: per metric protocol, models × scores, mean ± std over the runs
  (seeds) of each model's last evaluation, with the number of runs in each cell, and a floor row
  per model: the same model untrained (its step-0 scores: ``at_start: true`` in the evaluation
  callbacks), scored the same way; with ``--paper``, the paper's numbers beside each score.
- ``fig3.png``: one score (default: the FactorVAE score of the ``infogan_cr`` protocol, the
  paper's) against generator updates, a line per model (mean over runs) in a band (± std).

A run that crashed or lacks a score is reported in ``table3.md`` and left out of the cells it
cannot fill; it never stops the report. A separate entry point rather than a ``lightning_modules``
subcommand: those build a model, data and trainer from one config; this reads many runs and builds
nothing (no torch, no data, seconds).
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

#: The IDGAN-SC paper's Table 3 (dSprites; mean ± std over 50 runs for IDGAN-SC, the other rows
#: quoted from InfoGAN-CR), by score key.
PAPER_TABLE_3 = {
    "FactorVAE": {"factor_vae": (0.82, 0.10), "dci_disentanglement": (0.74, 0.10), "sap": (0.56, 0.00), "mig": (0.43, 0.01), "beta_vae": (0.84, 0.01)},
    "InfoGAN": {"factor_vae": (0.82, 0.10), "dci_disentanglement": (0.60, 0.02), "sap": (0.41, 0.02), "mig": (0.22, 0.01), "beta_vae": (0.87, 0.01)},
    "InfoGAN-CR": {"factor_vae": (0.88, 0.01), "dci_disentanglement": (0.71, 0.10), "sap": (0.58, 0.01), "mig": (0.37, 0.01), "beta_vae": (0.95, 0.01)},
    "IDGAN-SC (without β-VAE)": {"factor_vae": (0.90, 0.01), "dci_disentanglement": (0.72, 0.10), "sap": (0.59, 0.01), "mig": (0.38, 0.01), "beta_vae": (0.96, 0.02)},
    "IDGAN-SC (with β-VAE)": {"factor_vae": (0.91, 0.02), "dci_disentanglement": (0.75, 0.10), "sap": (0.60, 0.01), "mig": (0.42, 0.02), "beta_vae": (0.96, 0.01)},
}
#: The paper's Fig. 3 (§3.1 ablation): the FactorVAE score each arm settles at (read off the text).
PAPER_FIGURE_3 = {"InfoGAN": 0.80, "InfoGAN-CR": 0.88, "IDGAN-SC (without β-VAE)": 0.90}
DEFAULT_CURVE = "disentanglement/infogan_cr/factor_vae"


@dataclass
class Run:
    folder: Path
    model: str
    seed: object = None
    paper_model: str | None = None
    warm_started: bool = False
    max_steps: int | None = None
    #: key -> step -> value (a later row of a step, from a resumed run, wins)
    scores: dict[str, dict[int, float]] = field(default_factory=dict)
    problem: str | None = None

    @property
    def last_step(self) -> int | None:
        steps = [step for values in self.scores.values() for step in values]
        return max(steps) if steps else None


def paper_model(model: dict) -> str | None:
    """The paper's row for a config's model (None: not in the paper's table)."""
    name = str(model.get("class_path", "")).rsplit(".", 1)[-1]
    arguments = model.get("init_args") or {}
    if name == "IDGANSC":
        return "IDGAN-SC (without β-VAE)" if arguments.get("code_source") == "prior" else "IDGAN-SC (with β-VAE)"
    return {"FactorVAE": "FactorVAE", "InfoGAN": "InfoGAN", "InfoGANCR": "InfoGAN-CR", "InfoGANSC": "IDGAN-SC (without β-VAE)"}.get(name)


def find_runs(paths: list[Path]) -> list[Path]:
    """The run folders named, a folder of seed_<S> runs standing for its runs."""
    folders = []
    for path in paths:
        seeds = sorted(p for p in path.glob("seed_*") if p.is_dir())
        folders += seeds if seeds and not (path / "config.yaml").is_file() else [path]
    return folders


def read_run(folder: Path) -> Run:
    seeded = re.fullmatch(r"seed_(-?\d+)", folder.name)
    run = Run(folder, model=folder.parent.name if seeded else folder.name, seed=int(seeded[1]) if seeded else None)
    config_file, scores_file = folder / "config.yaml", folder / "scores.csv"
    if not config_file.is_file():
        run.problem = "no config.yaml (not a run folder, or the run never started)"
        return run
    config = yaml.safe_load(config_file.read_text()) or {}
    config = config.get("fit", config)  # a config saved with its subcommand
    model = config.get("model") or {}
    run.paper_model = paper_model(model)
    run.warm_started = bool((model.get("init_args") or {}).get("warm_start"))
    run.seed = config.get("seed_everything", run.seed)
    max_steps = (config.get("trainer") or {}).get("max_steps")
    run.max_steps = max_steps if isinstance(max_steps, int) and max_steps > 0 else None
    if not scores_file.is_file():
        run.problem = "no scores.csv: it stopped before its first evaluation"
        return run
    with open(scores_file, newline="") as file:
        for row in csv.DictReader(file):
            try:
                run.scores.setdefault(row["key"], {})[int(row["step"])] = float(row["value"])
            except (KeyError, TypeError, ValueError):
                continue  # a line cut short by a crash
    if not run.scores:
        run.problem = "scores.csv holds no score"
    return run


def mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std


@dataclass
class Cell:
    values: list[float]

    def text(self) -> str:
        if not self.values:
            return "–"
        mean, std = mean_std(self.values)
        return f"{mean:.3f} ± {std:.3f} ({len(self.values)})"


def build_tables(runs: list[Run], notes: list[str]) -> dict[str, list[dict]]:
    """Per protocol, rows {model, row ("trained" or "floor"), paper_model, cells {score: Cell}}."""
    models: dict[str, list[Run]] = {}
    for run in runs:
        if run.problem:
            notes.append(f"{run.folder}: {run.problem}; left out.")
            continue
        models.setdefault(run.model, []).append(run)
    keys = sorted({key for run in runs for key in run.scores if key.count("/") == 2})
    protocols = sorted({key.split("/")[1] for key in keys})
    tables: dict[str, list[dict]] = {protocol: [] for protocol in protocols}
    for model, group in models.items():
        target = next((run.max_steps for run in group if run.max_steps), None) or max(run.last_step for run in group)
        finished = []
        for run in group:
            if run.last_step < target:
                notes.append(f"{run.folder}: last scores at step {run.last_step} of {target} (crashed or stopped early); "
                             f"left out of {model}'s scores, kept in its floor and curve.")
            else:
                finished.append(run)
        for protocol in protocols:
            scores = [key for key in keys if key.split("/")[1] == protocol]
            trained = {}
            for key in scores:
                values = [run.scores[key][max(run.scores[key])] for run in finished if key in run.scores and max(run.scores[key]) == run.last_step]
                for run in finished:
                    if key not in run.scores or max(run.scores[key]) != run.last_step:
                        notes.append(f"{run.folder}: no {key} at its last step {run.last_step}; left out of that cell.")
                trained[key] = Cell(values)
            paper = group[0].paper_model
            if any(cell.values for cell in trained.values()):
                tables[protocol].append({"model": model, "row": "trained", "paper_model": paper, "cells": trained})
            scratch = [run for run in group if not run.warm_started]
            floor = {key: Cell([run.scores[key][0] for run in scratch if 0 in run.scores.get(key, {})]) for key in scores}
            if any(cell.values for cell in floor.values()):
                tables[protocol].append({"model": model, "row": "floor", "paper_model": None, "cells": floor})
            elif scratch and any(cell.values for cell in trained.values()):
                notes.append(f"{model}: no step-0 scores (set at_start: true in its evaluation callbacks) — no floor row.")
            elif any(cell.values for cell in trained.values()):
                notes.append(f"{model}: warm-started (its step 0 is the model it continues, not an untrained one) — no floor row; "
                             "read it against that model's floor.")
    return tables


def short(key: str) -> str:
    return key.rsplit("/", 1)[1]


def write_tables(tables: dict[str, list[dict]], notes: list[str], out: Path, paper: bool, runs: list[Run]) -> None:
    lines = ["# Table 3: disentanglement scores (dSprites)", "",
             "Each cell: mean ± std over runs (seeds) of each run's last evaluation, (n runs). A *floor* row is the same model "
             "untrained (step 0), scored the same way: read every number against it."
             + (" *paper*: the IDGAN-SC paper's Table 3 (its protocol is not stated; InfoGAN-CR's, quoted there, is `infogan_cr`)." if paper else ""), ""]
    rows_csv = []
    for protocol, rows in tables.items():
        scores = sorted({key for row in rows for key in row["cells"]})
        header = ["model"]
        for key in scores:
            header.append(short(key))
            if paper:
                header.append(f"{short(key)} (paper)")
        lines += [f"## Protocol `{protocol}`", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in rows:
            label = row["model"] if row["row"] == "trained" else f"*floor:* {row['model']} untrained"
            cells = [label]
            for key in scores:
                cell = row["cells"].get(key, Cell([]))
                cells.append(cell.text())
                reference = PAPER_TABLE_3.get(row["paper_model"] or "", {}).get(short(key))
                if paper:
                    cells.append(f"{reference[0]:.2f} ± {reference[1]:.2f}" if reference else "")
                mean, std = mean_std(cell.values) if cell.values else (None, None)
                rows_csv.append({"protocol": protocol, "model": row["model"], "row": row["row"], "score": short(key),
                                 "mean": "" if mean is None else f"{mean:.6f}", "std": "" if std is None else f"{std:.6f}",
                                 "n": len(cell.values), "paper_mean": reference[0] if reference and paper else "",
                                 "paper_std": reference[1] if reference and paper else ""})
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Runs", "", "| run | model | seed | last step |", "|---|---|---|---|"]
    lines += [f"| {run.folder} | {run.model} | {run.seed} | {run.last_step if run.last_step is not None else '–'} |" for run in runs]
    if notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in dict.fromkeys(notes))]
    (out / "table3.md").write_text("\n".join(lines) + "\n")
    with open(out / "table3.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, ["protocol", "model", "row", "score", "mean", "std", "n", "paper_mean", "paper_std"])
        writer.writeheader()
        writer.writerows(rows_csv)


def write_figure(runs: list[Run], key: str, out: Path, paper: bool) -> bool:
    """Fig. 3: ``key`` against generator updates, mean over each model's runs in a ± std band."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    models: dict[str, list[Run]] = {}
    for run in runs:
        if not run.problem and key in run.scores:
            models.setdefault(run.model, []).append(run)
    if not models:
        return False
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for model, group in models.items():
        steps = sorted({step for run in group for step in run.scores[key]})
        stats = [mean_std([run.scores[key][step] for run in group if step in run.scores[key]]) for step in steps]
        mean = [m for m, _ in stats]
        line, = axes.plot(steps, mean, marker="o", markersize=3, label=f"{model} (n={len(group)})")
        axes.fill_between(steps, [m - s for m, s in stats], [m + s for m, s in stats], color=line.get_color(), alpha=0.2)
        reference = PAPER_FIGURE_3.get(group[0].paper_model or "")
        if paper and reference is not None:
            axes.axhline(reference, color=line.get_color(), linestyle="--", linewidth=1, label=f"paper: {group[0].paper_model} ≈ {reference:.2f}")
    axes.set_xlabel("generator updates")
    axes.set_ylabel(short(key).replace("_", " ") + f" ({key.split('/')[1]})" if key.count("/") == 2 else key)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "fig3.png", dpi=150)
    plt.close(figure)
    return True


def main(args: list[str] | None = None) -> int:
    """Write the table and figure of the module docstring for ``args`` (the command line); returns 0."""
    parser = argparse.ArgumentParser(prog="python -m lightning_modules.cli.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, or folders of seed_<S> run folders")
    parser.add_argument("--out", type=Path, required=True, help="where table3.md, table3.csv and fig3.png go")
    parser.add_argument("--paper", action="store_true", help="add the paper's Table 3 and Fig. 3 numbers beside ours")
    parser.add_argument("--curve", default=DEFAULT_CURVE, help=f"the score Fig. 3 plots (default {DEFAULT_CURVE})")
    options = parser.parse_args(args)
    runs = [read_run(folder) for folder in find_runs(options.runs)]
    options.out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    tables = build_tables(runs, notes)
    if not write_figure(runs, options.curve, options.out, options.paper):
        notes.append(f"no run has {options.curve}: no fig3.png.")
    write_tables(tables, notes, options.out, options.paper, runs)
    for note in dict.fromkeys(notes):
        print(f"report: {note}", file=sys.stderr)
    left_out = sum(run.problem is not None for run in runs)
    counted = f"{len(runs)} runs" + (f", {left_out} left out (above)" if left_out else "")
    print(f"report: {counted} -> {options.out / 'table3.md'}, table3.csv" + (", fig3.png" if (options.out / "fig3.png").is_file() else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
