"""gan_ddp against torch DDP with find_unused_parameters=True, 2 processes through the real CLI.

Both train the same DCGAN on procedural dSprites with the same seed, batch and step count; the
only difference is the strategy. Each process gets one thread (2 processes on the 2-core CI
machine); on GPUs pass ``--accelerator gpu``.

    python -m bench.ddp
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def seconds_per_batch(strategy: str, args: argparse.Namespace, workdir: Path) -> float:
    out = workdir / f"{strategy}.json"
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": args.accelerator, "devices": args.devices, "strategy": strategy,
            "max_steps": args.warmup + args.steps, "logger": False, "enable_checkpointing": False,
            "enable_progress_bar": False, "enable_model_summary": False, "default_root_dir": str(workdir),
            "callbacks": [{"class_path": "bench.timing.StepTimer", "init_args": {"warmup": args.warmup, "out": str(out)}}],
        },
        "model": {"class_path": "lightning_modules.DCGAN",
                  "init_args": {"data_shape": [1, 64, 64], "width": args.width, "latent_dim": 10}},
        "data": {"class_path": "datamodules.DSpritesDataModule", "init_args": {"source": "procedural", "batch_size": args.batch_size}},
    }
    path = workdir / f"{strategy}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    result = subprocess.run([sys.executable, "-m", "lightning_modules", "fit", "--config", str(path)],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{strategy} failed:\n{result.stderr[-3000:]}")
    return json.loads(out.read_text())["seconds_per_batch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        times = {s: seconds_per_batch(s, args, Path(tmp)) for s in ("gan_ddp", "ddp_find_unused_parameters_true")}
    print(f"DCGAN 64px width {args.width}, {args.devices} x {args.accelerator} processes, batch {args.batch_size} per process")
    for strategy, seconds in times.items():
        print(f"{strategy:34s}: {1 / seconds:7.2f} steps/s")
    print(f"speed-up of gan_ddp              : {times['ddp_find_unused_parameters_true'] / times['gan_ddp']:7.3f}x")


if __name__ == "__main__":
    main()
