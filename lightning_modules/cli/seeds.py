"""``python -m lightning_modules.cli.seeds --seeds 0 1 2 -- fit --config configs/X.yaml [...]``: the same
command once per seed, one after the other, each run in its own folder
``<default_root_dir>/seed_<S>`` and its W&B run in one group (``--run_per_seed``, see
``lightning_modules.cli``). On a cluster, run the seeds as N jobs instead: each job runs
``python -m lightning_modules fit --config X.yaml --seed_everything S --run_per_seed true``
(README, "Reproducing the paper").

``{seed}`` in the command stands for the seed, e.g. each ablation arm's seed continuing its own
pre-training: ``--model.init_args.warm_start=runs/ablation_infogan_pretrain_dsprites/seed_{seed}/checkpoints/last.ckpt``.
A seed whose run fails is reported and the next one runs; the exit status is 1 if any failed.
Runs in this process (no interpreter start per seed); each run's W&B run ends with it.
"""

from __future__ import annotations

import argparse
import sys

from lightning_modules.cli import main as run_command


def main(args: list[str] | None = None) -> int:
    """Run the command once per seed (see the module docstring); returns the exit status: 0, or 1 if any seed failed."""
    parser = argparse.ArgumentParser(
        prog="python -m lightning_modules.cli.seeds",
        description="Run one lightning_modules command once per seed, each in its own run folder, grouped in W&B.",
        epilog="example: python -m lightning_modules.cli.seeds --seeds 0 1 2 -- fit --config configs/ablation_idgan_sc_dsprites.yaml",
    )
    parser.add_argument("--seeds", type=int, nargs="+", required=True, help="the values of seed_everything, one run each")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="after --: the command, as `python -m lightning_modules` takes it")
    options = parser.parse_args(args)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("give the command after --, e.g. -- fit --config configs/infogan_dsprites.yaml")
    failed, own_argv = [], sys.argv
    try:
        for seed in options.seeds:
            arguments = [argument.replace("{seed}", str(seed)) for argument in command]
            print(f"seeds: seed {seed}: python -m lightning_modules {' '.join(arguments)}", file=sys.stderr, flush=True)
            # parsed from sys.argv, as if typed: W&B records this run's command, and Lightning does not
            # warn that the arguments given differ from the seeds command's
            sys.argv = ["python -m lightning_modules", *arguments, f"--seed_everything={seed}", "--run_per_seed=true"]
            try:
                run_command()
            except SystemExit as exit_:
                if exit_.code not in (0, None):
                    failed.append(seed)
            except Exception as error:  # noqa: BLE001 (one seed's failure must not stop the others)
                print(f"seeds: seed {seed} failed: {type(error).__name__}: {error}", file=sys.stderr)
                failed.append(seed)
    finally:
        sys.argv = own_argv
    if failed:
        print(f"seeds: {len(failed)} of {len(options.seeds)} runs failed (seeds {', '.join(map(str, failed))})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
