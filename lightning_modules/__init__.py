"""LightningModules: one per model, on the shared base in ``lightning_modules.base``."""

from lightning_modules.base import AdversarialModule, GenerativeModule
from lightning_modules.beta_vae import BetaVAE
from lightning_modules.bigan import BiGAN
from lightning_modules.clr import CLR
from lightning_modules.cvae import CVAE
from lightning_modules.dcgan import DCGAN
from lightning_modules.ebgan import EBGAN
from lightning_modules.factor_vae import FactorVAE
from lightning_modules.fgan import FGAN
from lightning_modules.idgan_sc import IDGANSC
from lightning_modules.infogan import InfoGAN, InfoGANCR, InfoGANSC
from lightning_modules.latent_constraints import LatentConstraints
from lightning_modules.lsgan import LSGAN
from lightning_modules.training import strategies  # noqa: F401  (registers the gan_ddp strategies)
from lightning_modules.training.annealing import KLAnnealing
from lightning_modules.training.optim import OptimizerConfig
from lightning_modules.vae_gan import VAEGAN
from lightning_modules.wgan import WGAN
from lightning_modules.wgan_gp import WGANGP

__all__ = [
    "AdversarialModule", "BetaVAE", "BiGAN", "CLR", "CVAE", "DCGAN", "EBGAN", "FGAN", "FactorVAE", "GenerativeModule", "IDGANSC",
    "InfoGAN", "InfoGANCR", "InfoGANSC", "KLAnnealing", "LSGAN", "LatentConstraints", "OptimizerConfig", "VAEGAN", "WGAN", "WGANGP",
]
