"""Warm start: a run that begins from the networks of another run's checkpoint (the arms of the
IDGAN-SC paper's §3.1 ablation all continue one InfoGAN pre-training).

Only the networks named in ``warm_start_networks`` are copied, exactly (spectral norm's power-
iteration vectors and batch-norm statistics included); every other network (an arm's regulariser
head) keeps its fresh initialisation. The optimizers start fresh and the step count at 0: the paper
saved the pre-trained model's parameters (§3.1), and fresh Adam moments give every arm the same
start, the new head included (it has no state to continue). A resumed run takes everything from its
own checkpoint, so the warm-start file is needed only for the first start.
"""

from __future__ import annotations

from pathlib import Path
from pydoc import locate
from typing import Any

from torch import Tensor

from lightning_modules.training.checkpoints import (
    MODEL_CLASS_KEY,
    as_config,
    read_checkpoint,
)


class WarmStart:
    """Mixin for a ``GenerativeModule`` with an init argument (and attribute) ``warm_start``: a
    checkpoint path, or None to start from scratch."""

    #: The networks (attribute names) a warm start copies.
    warm_start_networks: tuple[str, ...]
    #: Settings the checkpoint must have been written with, as this run has them (those that shape
    #: the shared networks or what they are fed).
    warm_start_settings: tuple[str, ...] = ()
    #: What the networks are, and the config that writes such a checkpoint (for messages).
    warm_start_role: str
    warm_start_config: str

    warm_start: str | None
    _warm_state: dict[str, Tensor] | None = None  # the shared networks' weights, read and checked
    _warm_started = False
    _resumed = False

    def check_inputs(self, datamodule, resuming: bool = False) -> list[str]:
        """Also the warm-start checkpoint (unless ``resuming``: the run's own checkpoint gives the
        state): present, readable, holding these networks, written with this run's settings."""
        problems = super().check_inputs(datamodule, resuming)
        if self.warm_start is None or resuming:
            return problems
        try:
            self._warm_state = self.read_warm_start(self.warm_start)
        except (FileNotFoundError, ValueError) as error:
            problems.append(str(error))
        return problems

    def setup(self, stage: str) -> None:
        """In fit, loads ``warm_start``'s networks once, before the base copies the generator into its EMA (a resumed checkpoint replaces them later)."""
        # Before the base's setup, which copies the generator into its EMA. A resumed run's
        # checkpoint is loaded after setup and replaces these weights.
        if stage == "fit" and self.warm_start is not None and not self._warm_started and Path(self.warm_start).is_file():
            self._warm_state = self._warm_state or self.read_warm_start(self.warm_start)
            for network in self.warm_start_networks:
                prefix = f"{network}."
                getattr(self, network).load_state_dict({k[len(prefix):]: v for k, v in self._warm_state.items() if k.startswith(prefix)})
            self._warm_state, self._warm_started = None, True
        super().setup(stage)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Notes the resume: the run's own checkpoint, not ``warm_start``, holds its networks."""
        super().on_load_checkpoint(checkpoint)
        self._resumed = True

    def on_fit_start(self) -> None:
        """Raises FileNotFoundError (naming the pre-training config) when ``warm_start`` was neither loaded nor replaced by a resume."""
        super().on_fit_start()
        if self.warm_start is not None and not (self._warm_started or self._resumed):
            raise FileNotFoundError(self._missing_message())

    def _missing_message(self) -> str:
        return (
            f"{type(self).__name__} warm_start='{self.warm_start}', which does not exist: run the pre-training first "
            f"(`python -m lightning_modules fit --config {self.warm_start_config}`) or point model.init_args.warm_start "
            f"at its last.ckpt (null: start from scratch)."
        )

    def read_warm_start(self, path: str) -> dict[str, Tensor]:
        """The weights of ``warm_start_networks`` in the checkpoint at ``path``, checked against this model.

        Raises:
            FileNotFoundError: no file at ``path`` (the message names the pre-training config). ValueError: an unreadable checkpoint, another family's, or one written with other network-shaping settings (named).
        """
        if not Path(path).is_file():
            raise FileNotFoundError(self._missing_message())
        try:
            checkpoint = read_checkpoint(path)
        except ValueError as error:
            raise ValueError(f"warm_start: {error}") from error
        saved: dict[str, Tensor] = checkpoint.get("state_dict", {})
        prefixes = tuple(f"{network}." for network in self.warm_start_networks)
        expected = {key: value for key, value in self.state_dict().items() if key.startswith(prefixes)}
        then: dict[str, Any] = checkpoint.get("hyper_parameters", {}) if self._same_family(checkpoint) else {}
        differ = [name for name in self.warm_start_settings if name in then and as_config(then[name]) != as_config(self.hparams[name])]
        if not expected.keys() <= saved.keys() and not differ:  # a family member's other G is a setting to name
            writer = str(checkpoint.get(MODEL_CLASS_KEY, "another model")).rpartition(".")[2]
            raise ValueError(
                f"warm_start '{path}' (written by {writer}) holds no {self.warm_start_role}: point it at the last.ckpt "
                f"of the pre-training ({self.warm_start_config})."
            )
        mismatched = [key for key, value in expected.items() if key in saved and tuple(saved[key].shape) != tuple(value.shape)]
        if differ or mismatched:
            settings = ", ".join(f"{name}={then[name]}" for name in differ)
            now = ", ".join(f"{name}={self.hparams[name]}" for name in differ)
            fix = ", ".join(f"model.init_args.{name}={then[name]}" for name in differ)
            raise ValueError(
                f"warm_start '{path}' was pre-trained with {settings}; this run has {now}: set {fix} to continue it, "
                f"or pre-train with this run's settings." if differ else
                f"warm_start '{path}' holds networks of other shapes than this run builds ({mismatched[0]}: "
                f"{tuple(saved[mismatched[0]].shape)} there, {tuple(expected[mismatched[0]].shape)} here): build this run "
                f"with the pre-training's settings."
            )
        return {key: saved[key] for key in expected}

    def _same_family(self, checkpoint: dict[str, Any]) -> bool:
        """Whether ``checkpoint`` was written by this network family (the class that declares
        ``warm_start_networks``, or a subclass of it); a checkpoint that records no class counts."""
        writer = checkpoint.get(MODEL_CLASS_KEY)
        family = next(cls for cls in type(self).__mro__ if "warm_start_networks" in vars(cls))
        writer_class = locate(writer) if writer else family
        return isinstance(writer_class, type) and issubclass(writer_class, family)
