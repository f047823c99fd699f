"""Models built on a frozen β-VAE trained by another run (IDGAN-SC's distiller, the VAE under
latent constraints), read from a checkpoint file named in the config.

The file is read at ``setup``, checked against the model (clear errors naming the keys to change),
and the VAE's hyper-parameters are stored in this model's checkpoints (its weights are in the state
dict anyway), so loading and resuming work where the file is gone.

A model declares what it loads with one :class:`FrozenVAE` in its class statement, and the mixin
comes first among its bases (its hooks wrap the model's; a wrong order is refused at class creation)::

    class IDGANSC(PretrainedVAE, AdversarialModule, frozen_vae=FrozenVAE("distiller_checkpoint", ...)):
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.warnings import PossibleUserWarning
from torch import Tensor, nn

#: The repository's configs folder (what the README's commands name, relative to the clone).
_SHIPPED_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@dataclass(frozen=True)
class FrozenVAE:
    """What a model loads from a VAE checkpoint, and how it names it to the user.

    Args:
        checkpoint_argument: The init argument (and attribute) holding the checkpoint's path.
        attribute: The attribute that holds the frozen network (its state-dict prefix); the VAE's
            hyper-parameters are kept in this model's checkpoints under ``<attribute>_hparams``.
        role: What the VAE is to this model, in messages ("stage-one β-VAE distiller").
        config: The config that trains such a VAE, in messages.
        latent_argument: The init argument that must equal the VAE's ``latent_dim``.
        vae_class: The class the checkpoint's hyper-parameters build (a β-VAE: it must have written
            a ``beta`` hyper-parameter and ``encoder.*`` weights).
        part: What the model keeps of the built VAE (all of it by default).
    """

    checkpoint_argument: str
    attribute: str
    role: str
    config: str
    latent_argument: str
    vae_class: type[nn.Module]
    part: Callable[[nn.Module], nn.Module] = lambda vae: vae

    @property
    def hparams_key(self) -> str:
        """The checkpoint entry holding the VAE's hyper-parameters: ``<attribute>_hparams``."""
        return f"{self.attribute}_hparams"


class PretrainedVAE:
    """Mixin for a ``GenerativeModule`` that keeps (part of) a frozen VAE as an attribute, declared
    by the class keyword ``frozen_vae`` (a :class:`FrozenVAE`). The subclass initialises the
    attribute to None in ``__init__`` and may override ``needs_vae``.

    Raises:
        TypeError: at class creation, when ``frozen_vae`` is missing or the mixin does not come
            before the LightningModule in the bases (its hooks would never run).
    """

    frozen_vae: FrozenVAE
    _vae_hparams: dict[str, Any] | None = None

    def __init_subclass__(cls, frozen_vae: FrozenVAE | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if frozen_vae is not None:
            cls.frozen_vae = frozen_vae
        if not isinstance(getattr(cls, "frozen_vae", None), FrozenVAE):
            raise TypeError(f"{cls.__name__} must say what it loads: class {cls.__name__}(PretrainedVAE, ..., frozen_vae=FrozenVAE(...))")
        if issubclass(cls, pl.LightningModule) and cls.__mro__.index(PretrainedVAE) > cls.__mro__.index(pl.LightningModule):
            bases = ", ".join(base.__name__ for base in cls.__bases__)
            raise TypeError(
                f"class {cls.__name__}({bases}): PretrainedVAE must come before the LightningModule among the bases "
                f"(its setup, checkpoint and train hooks wrap the model's): class {cls.__name__}(PretrainedVAE, ...)."
            )

    def needs_vae(self) -> bool:
        """Whether this run uses the VAE at all (a model may not, in some settings: then no file is needed)."""
        return True

    # ------------------------------------------------------------------------- lifecycle
    def setup(self, stage: str) -> None:
        """Builds the frozen VAE from its checkpoint when the file is there (a resume builds it from this model's checkpoint instead)."""
        path = getattr(self, self.frozen_vae.checkpoint_argument)
        if self.needs_vae() and self._vae_hparams is None and path is not None and Path(path).is_file():
            self._set_vae(*self.read_vae_checkpoint(path))
        super().setup(stage)

    def check_inputs(self, datamodule, resuming: bool = False) -> list[str]:
        """Also the VAE checkpoint: present (unless ``resuming``: this model's checkpoints hold the
        VAE), a β-VAE's, of this model's code size and image shape. A good one is kept for ``setup``."""
        problems = super().check_inputs(datamodule, resuming)
        path = getattr(self, self.frozen_vae.checkpoint_argument)
        if not self.needs_vae() or self._vae_hparams is not None:
            return problems
        if path is None or not Path(path).is_file():
            return problems if resuming else [*problems, self._missing_vae_message()]
        try:
            self._set_vae(*self.read_vae_checkpoint(path))
        except ValueError as error:
            problems.append(str(error))
        return problems

    def on_fit_start(self) -> None:
        """Silences Lightning's warning of modules in eval mode when the frozen VAE's are the only ones.

        Raises:
            FileNotFoundError: the run needs the VAE and has none (the message names the config that trains it).
        """
        super().on_fit_start()
        if self.needs_vae() and self._vae_hparams is None:
            raise FileNotFoundError(self._missing_vae_message())
        frozen = getattr(self, self.frozen_vae.attribute, None)
        in_eval_mode = [name for name, module in self.named_modules() if not module.training]
        if frozen is not None and len(in_eval_mode) == len([m for m in frozen.modules() if not m.training]):
            # Lightning's warning of modules in eval mode would name only the frozen VAE's, in eval
            # mode on purpose; with the exact count, any other module in eval mode is still warned of.
            warnings.filterwarnings(
                "ignore", message=rf"Found {len(in_eval_mode)} module\(s\) in eval mode at the start of training", category=PossibleUserWarning
            )

    def _missing_vae_message(self) -> str:
        argument = self.frozen_vae.checkpoint_argument
        path = getattr(self, argument)
        # a shipped config's run folder, runs/<name>/..., is written by configs/<name>.yaml
        parts = Path(path or "").parts
        name = f"{parts[parts.index('runs') + 1]}.yaml" if "runs" in parts[:-1] else None
        config = f"configs/{name}" if name is not None and (_SHIPPED_CONFIGS / name).is_file() else self.frozen_vae.config
        return (
            f"{type(self).__name__} needs the {self.frozen_vae.role} checkpoint {argument}="
            f"'{path}', which does not exist. Train it first (`python -m "
            f"lightning_modules fit --config {config}`) or point model.init_args.{argument} "
            f"at its last.ckpt."
        )

    def train(self, mode: bool = True):
        """The module's ``train(mode)``, the frozen VAE always left in eval mode (its batch norm keeps the statistics it was trained with)."""
        super().train(mode)
        frozen = getattr(self, self.frozen_vae.attribute, None)
        if frozen is not None:
            frozen.eval()  # frozen: its batch norm keeps the statistics it was trained with
        return self

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Also the VAE's hyper-parameters (its weights are in the state dict), so that a resume needs no stage-one file."""
        super().on_save_checkpoint(checkpoint)
        if self._vae_hparams is not None:
            checkpoint[self.frozen_vae.hparams_key] = self._vae_hparams

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Builds the frozen VAE from the hyper-parameters the checkpoint holds, before the state dict fills its weights."""
        super().on_load_checkpoint(checkpoint)
        if self._vae_hparams is None and self.frozen_vae.hparams_key in checkpoint:
            self._set_vae(checkpoint[self.frozen_vae.hparams_key], None)  # weights follow in the state dict

    # -------------------------------------------------------------------------- loading
    def _set_vae(self, hparams: dict[str, Any], state_dict: dict[str, Tensor] | None) -> None:
        hparams = with_data_shape(hparams)
        vae_class = self.frozen_vae.vae_class
        vae = vae_class(**{k: v for k, v in hparams.items() if k in inspect.signature(vae_class.__init__).parameters})
        if state_dict is not None:
            vae.load_state_dict(state_dict)
        setattr(self, self.frozen_vae.attribute, self.frozen_vae.part(vae).requires_grad_(False).eval())
        self._vae_hparams = hparams

    def read_vae_checkpoint(self, path: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """A β-VAE checkpoint's hyper-parameters and weights, checked against this model.

        Raises:
            ValueError: an unreadable file, a checkpoint that is not a β-VAE's, or one of another code size or image shape than this model's.
        """
        argument = self.frozen_vae.checkpoint_argument
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(f"{argument} '{path}' is not a readable checkpoint: {error}") from error
        hparams = with_data_shape(checkpoint.get("hyper_parameters", {}))
        state_dict = checkpoint.get("state_dict", {})
        if "beta" not in hparams or not any(key.startswith("encoder.") for key in state_dict):
            raise ValueError(
                f"{argument} '{path}' is not a β-VAE checkpoint: train one with {self.frozen_vae.config} "
                f"and point {argument} at its last.ckpt."
            )
        latent_dim = getattr(self, self.frozen_vae.latent_argument)
        if hparams["latent_dim"] != latent_dim:
            raise ValueError(
                f"the {self.frozen_vae.role} in '{path}' has a code of size {hparams['latent_dim']} but "
                f"{self.frozen_vae.latent_argument}={latent_dim}: set model.init_args.{self.frozen_vae.latent_argument}="
                f"{hparams['latent_dim']}, or train a β-VAE with latent_dim={latent_dim}."
            )
        vae_shape = tuple(hparams["data_shape"])
        if vae_shape != tuple(self.data_shape):
            raise ValueError(
                f"the {self.frozen_vae.role} in '{path}' was trained on images of shape {vae_shape} but "
                f"{type(self).__name__} is built for {tuple(self.data_shape)}: set model.init_args.data_shape={list(vae_shape)}."
            )
        return hparams, state_dict


def with_data_shape(hparams: dict[str, Any]) -> dict[str, Any]:
    """A β-VAE's hyper-parameters with ``data_shape``: stage-one checkpoints written before it replaced
    ``image_size`` and ``channels`` carry those, and stay usable (they take hours to train)."""
    if "data_shape" in hparams or "image_size" not in hparams:
        return hparams
    hparams = dict(hparams)
    size, channels = hparams.pop("image_size"), hparams.pop("channels", 1)
    return {**hparams, "data_shape": (channels, size, size)}
