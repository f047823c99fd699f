"""``python -m tests.ddp_matrix CONFIG...``: the CLI's ``fit`` of each config in turn, in one launch of
the processes. Lightning starts the other ranks for the first fit, each rank runs this same loop, and
the later fits reuse the processes and their process group: the DDP suite pays for process start-up,
imports and gloo set-up once instead of once per model (13-24 s each)."""

import sys

from lightning_modules.cli import main

if __name__ == "__main__":
    for config in sys.argv[1:]:
        main(["fit", "--config", config])
