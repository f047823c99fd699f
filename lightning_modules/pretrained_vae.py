"""Models built on a frozen β-VAE trained by another run (IDGAN-SC's distiller, the VAE under
latent constraints), read from a checkpoint file named in the config.

The file is read at ``setup``, checked against the model (clear errors naming the keys to change),
and the VAE's hyper-parameters are stored in this model's checkpoints (its weights are in the state
dict anyway), so loading and resuming work where the file is gone.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightning_modules.beta_vae import BetaVAE


#: The repository's configs folder (what the README's commands name, relative to the clone).
_SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class PretrainedVAE:
    """Mixin for a ``GenerativeModule`` that keeps (part of) a frozen β-VAE as an attribute.

    The subclass sets the class attributes below, initialises the attribute ``vae_attribute`` to
    None in ``__init__``, and may override ``needs_vae`` and ``vae_part``.
    """

    #: The init argument (and attribute) holding the checkpoint path.
    vae_checkpoint_argument: str
    #: The attribute that holds the frozen network.
    vae_attribute: str
    #: The key of the VAE's hyper-parameters in this model's checkpoints.
    vae_hparams_key: str
    #: What the VAE is to this model (error messages) and the config that trains it.
    vae_role: str
    vae_config: str
    #: The init argument that must equal the VAE's latent_dim.
    latent_argument: str

    _vae_hparams: dict[str, Any] | None = None

    def needs_vae(self) -> bool:
        return True

    def vae_part(self, vae: BetaVAE) -> nn.Module:
        """What this model keeps of the VAE (all of it by default)."""
        return vae

    # ------------------------------------------------------------------------- lifecycle
    def setup(self, stage: str) -> None:
        path = getattr(self, self.vae_checkpoint_argument)
        if self.needs_vae() and self._vae_hparams is None and path is not None and Path(path).is_file():
            self._set_vae(*self.read_vae_checkpoint(path))
        super().setup(stage)

    def check_inputs(self, datamodule, resuming: bool = False) -> list[str]:
        """Also the VAE checkpoint: present (unless ``resuming``: this model's checkpoints hold the
        VAE), a β-VAE's, of this model's code size and image shape. A good one is kept for ``setup``."""
        problems = super().check_inputs(datamodule, resuming)
        path = getattr(self, self.vae_checkpoint_argument)
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
        super().on_fit_start()
        if self.needs_vae() and self._vae_hparams is None:
            raise FileNotFoundError(self._missing_vae_message())

    def _missing_vae_message(self) -> str:
        argument = self.vae_checkpoint_argument
        path = getattr(self, argument)
        # a shipped config's run folder, runs/<name>/..., is written by configs/<name>.yaml
        parts = Path(path or "").parts
        name = f"{parts[parts.index('runs') + 1]}.yaml" if "runs" in parts[:-1] else None
        config = f"configs/{name}" if name is not None and (_SHIPPED_CONFIGS / name).is_file() else self.vae_config
        return (
            f"{type(self).__name__} needs the {self.vae_role} checkpoint {argument}="
            f"'{path}', which does not exist. Train it first (`python -m "
            f"lightning_modules fit --config {config}`) or point model.init_args.{argument} "
            f"at its last.ckpt."
        )

    def train(self, mode: bool = True):
        super().train(mode)
        frozen = getattr(self, self.vae_attribute, None)
        if frozen is not None:
            frozen.eval()  # frozen: its batch norm keeps the statistics it was trained with
        return self

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if self._vae_hparams is not None:
            checkpoint[self.vae_hparams_key] = self._vae_hparams

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if self._vae_hparams is None and self.vae_hparams_key in checkpoint:
            self._set_vae(checkpoint[self.vae_hparams_key], None)  # weights follow in the state dict

    # -------------------------------------------------------------------------- loading
    def _set_vae(self, hparams: dict[str, Any], state_dict: dict[str, Tensor] | None) -> None:
        hparams = with_data_shape(hparams)
        vae = BetaVAE(**{k: v for k, v in hparams.items() if k in inspect.signature(BetaVAE.__init__).parameters})
        if state_dict is not None:
            vae.load_state_dict(state_dict)
        setattr(self, self.vae_attribute, self.vae_part(vae).requires_grad_(False).eval())
        self._vae_hparams = hparams

    def read_vae_checkpoint(self, path: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """A β-VAE checkpoint's hyper-parameters and weights, checked against this model."""
        argument = self.vae_checkpoint_argument
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(f"{argument} '{path}' is not a readable checkpoint: {error}") from error
        hparams = with_data_shape(checkpoint.get("hyper_parameters", {}))
        state_dict = checkpoint.get("state_dict", {})
        if "beta" not in hparams or not any(key.startswith("encoder.") for key in state_dict):
            raise ValueError(
                f"{argument} '{path}' is not a β-VAE checkpoint: train one with {self.vae_config} "
                f"and point {argument} at its last.ckpt."
            )
        latent_dim = getattr(self, self.latent_argument)
        if hparams["latent_dim"] != latent_dim:
            raise ValueError(
                f"the {self.vae_role} in '{path}' has a code of size {hparams['latent_dim']} but "
                f"{self.latent_argument}={latent_dim}: set model.init_args.{self.latent_argument}="
                f"{hparams['latent_dim']}, or train a β-VAE with latent_dim={latent_dim}."
            )
        vae_shape = tuple(hparams["data_shape"])
        if vae_shape != tuple(self.data_shape):
            raise ValueError(
                f"the {self.vae_role} in '{path}' was trained on images of shape {vae_shape} but "
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
