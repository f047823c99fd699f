import os

# Tests never talk to W&B servers, and never wait for them.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
