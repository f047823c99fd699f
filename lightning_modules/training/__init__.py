"""Plumbing used while training, shared by every model and never a model itself: the gan_ddp
strategy and its gradient averaging, the non-finite-update policy, EMA, AMP loss-scale handling,
optimizer configs, KL annealing, latent-code operations, checkpoint IO and extras, pretrained-VAE
loading, warm starts and the contrastive head. Imports torch, Lightning and ``lightning_modules.nets``
/ ``lightning_modules.losses``; never a model file or ``lightning_modules.cli``."""
