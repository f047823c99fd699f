"""What the disentanglement scoring of each dSprites config costs, in training steps.

For each config: the seconds of one training step (the config's model and batch, procedural
dSprites), and of one evaluation of each ``DisentanglementEvaluation`` the config runs, measured at
``--scale`` times the protocol's sample counts and extrapolated linearly (encoding the observations
dominates, and every count scales it). The ratio (evaluation seconds / step seconds) is what an
evaluation costs in steps; times the number of evaluations in a run, over the run's steps, is the
share of the run spent scoring. On a GPU both sides speed up by a similar factor (both are the same
conv nets' forward passes, the step also their backward), so the share measured here is the
estimate for a GPU run.

    nice -n 10 python -m bench.scoring_cost                         # every dSprites config
    nice -n 10 python -m bench.scoring_cost configs/quickstart.yaml --scale 1
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from bench.timing import StepTimer
from datamodules import DSpritesDataModule
from lightning_modules import BetaVAE
from lightning_modules.cli import resolved_config
from lightning_modules.training.optim import OptimizerConfig
from metrics import METRICS

CONFIGS = ["quickstart_stage_one", "quickstart", "beta_vae_dsprites", "idgan_sc_dsprites", "idgan_sc_prior_dsprites",
           "infogan_dsprites", "infogan_cr_dsprites", "factor_vae_dsprites"]


#: Measured for a config that has no DisentanglementEvaluation yet.
DEFAULT_EVALUATIONS = [{"protocol": "infogan_cr", "metrics": ["factor_vae"]}, {"protocol": "disentanglement_lib"}]


def build_model(config: dict, tmp: Path) -> pl.LightningModule:
    module, name = config["model"]["class_path"].rsplit(".", 1)
    args = dict(config["model"]["init_args"])
    if "distiller_checkpoint" in args and args.get("code_source") != "prior":
        vae = BetaVAE(latent_dim=args["code_dim"], data_shape=(1, 64, 64), width=32)
        trainer = pl.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
        trainer.strategy.connect(vae)
        trainer.save_checkpoint(tmp / "distiller.ckpt")
        args["distiller_checkpoint"] = str(tmp / "distiller.ckpt")
    for key, value in args.items():
        if key.endswith("_optimizer") or key == "optimizer":
            args[key] = OptimizerConfig(**value)
    return getattr(importlib.import_module(module), name)(**args)


def step_seconds(model: pl.LightningModule, batch_size: int, batches: int) -> float:
    timer = StepTimer(warmup=3)
    trainer = pl.Trainer(accelerator="cpu", max_steps=3 + batches, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[timer])
    trainer.fit(model, DSpritesDataModule(source="procedural", batch_size=batch_size, value_range=(0.0, 1.0)))
    return timer.seconds * getattr(model, "n_critic", 1)


def evaluation_seconds(model: pl.LightningModule, arguments: dict, scale: float) -> dict[str, float]:
    """Seconds of each metric of one evaluation with these callback arguments, extrapolated to full size."""
    ground_truth = DSpritesDataModule(source="procedural", value_range=(0.0, 1.0)).ground_truth
    protocol = arguments.get("protocol", "disentanglement_lib")
    seconds = {}
    for name in arguments.get("metrics", list(METRICS)):
        metric_class = METRICS[name]
        full = {**metric_class.defaults, **metric_class.protocol_defaults.get(protocol, {}), **arguments.get("sizes", {}).get(name, {})}
        scaled = {key: max(2, round(value * scale)) if key.startswith("num_") and isinstance(value, int) and value else value
                  for key, value in full.items() if key != "batch_size"}
        if name == "factor_vae" and full.get("num_variance_estimate") is None:
            scaled["num_variance_estimate"] = round(737_280 // 10 * scale)
        metric = metric_class(ground_truth, protocol=protocol, **scaled)
        start = time.perf_counter()
        with torch.no_grad():
            metric.observe(model.encode, batch_size=arguments.get("batch_size", 256))
            metric.compute()
        seconds[name] = (time.perf_counter() - start) / scale
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=[f"configs/{name}.yaml" for name in CONFIGS])
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()
    print(f"CPU, {torch.get_num_threads()} threads; evaluations at {args.scale} of their sizes, extrapolated")
    print("| config | step s | evaluation | s | steps | evaluations per run | share of the run |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.configs:
            config = resolved_config(path)
            model = build_model(config, Path(tmp))
            step = step_seconds(model, config["data"]["init_args"]["batch_size"], args.batches)
            model.eval()
            max_steps = config["trainer"].get("max_steps") or config["trainer"]["max_epochs"] * 737_280 // config["data"]["init_args"]["batch_size"]
            evaluations = [c.get("init_args", {}) for c in config["trainer"]["callbacks"]
                           if c["class_path"] == "callbacks.DisentanglementEvaluation"] or DEFAULT_EVALUATIONS
            for arguments in evaluations:
                seconds = sum(evaluation_seconds(model, arguments, args.scale).values())
                every = arguments.get("every_n_steps", 5000)
                runs = (max_steps // every if every else 0) + 1
                print(f"| {Path(path).stem} | {step:.3f} | {arguments.get('protocol', 'disentanglement_lib')} "
                      f"{arguments.get('metrics', 'all')} every {every} | {seconds:.0f} | {seconds / step:.0f} | {runs} "
                      f"| {runs * seconds / (max_steps * step):.1%} |", flush=True)


if __name__ == "__main__":
    main()
