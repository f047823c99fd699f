"""Checkpoint files that survive clusters: written atomically, read without running pickled code,
and refused with one clear message when truncated, unsafe, written by another model class or
holding networks of other shapes; and what a checkpoint holds besides Lightning's own entries
(the writing class, the RNG states, the W&B run id: :func:`run_state`).

Lightning's own save (``lightning_fabric.utilities.cloud_io._atomic_save``) writes through an
fsspec transaction whose temporary file is made by ``tempfile.mkstemp()``, i.e. in ``$TMPDIR``.
When that is another filesystem than the run directory (node-local /tmp and a shared run
directory, the usual cluster layout) the commit is ``shutil.move``, which falls back to copying
*onto* the checkpoint's path: a crash or a full disk during that copy leaves a truncated
``last.ckpt`` in place of the previous one. Nor is the file synced before the rename. Here the
temporary file lies next to the checkpoint, is synced, and replaces it with one ``os.replace``.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning_fabric.plugins import TorchCheckpointIO
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.loggers import WandbLogger

#: The checkpoint entry naming the class that wrote it (``module.Class``).
MODEL_CLASS_KEY = "model_class"


class SafeCheckpointIO(TorchCheckpointIO):
    """Atomic, synced local saves; loads with ``weights_only=True`` and clear errors (see the module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            # remote stores replace whole objects on upload; the parent also rejects storage_options
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # hidden and not *.ckpt, so that neither `--ckpt_path last` nor ModelCheckpoint ever picks it up
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(temporary, "xb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_directory(path.parent)  # makes the rename itself durable

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        """The checkpoint at ``path``, read with ``weights_only=True`` whatever the caller asks (see :func:`read_checkpoint`).

        Raises:
            FileNotFoundError: no file at ``path``. ValueError: a truncated, corrupt or unsafe file (:func:`read_checkpoint`).
        """
        # weights_only is always True: checkpoints of this framework hold only tensors and plain values.
        if not get_filesystem(path).exists(path):
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        return read_checkpoint(path, map_location)


def _fsync_directory(directory: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return  # Windows cannot open a directory to sync it
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``; a file that fails is named, with why and what to do.

    Raises:
        ValueError: a file holding pickled objects other than tensors and plain values, or one that is truncated or corrupt (naming the previous checkpoint to use).
    """
    try:
        return TorchCheckpointIO().load_checkpoint(path, map_location=map_location, weights_only=True)
    except Exception as error:
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise ValueError(
                f"checkpoint '{path}' is refused: it holds pickled objects other than tensors and plain values "
                f"({', '.join(sorted(unsafe))}), and loading them could run code they carry. Use a checkpoint "
                f"written by this framework; if you trust this file, load it with torch.load(weights_only=False) "
                f"yourself and save only its tensors and plain values."
            ) from error
        raise ValueError(
            f"checkpoint '{path}' is not a readable checkpoint (truncated or corrupt), was the save interrupted? "
            f"{_previous_checkpoint_hint(Path(path))}"
        ) from error


def _unsafe_globals(path: str | Path) -> list[str]:
    """The globals in the checkpoint's pickle that ``weights_only`` refuses; none when it is unreadable."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        return []


def _previous_checkpoint_hint(path: Path) -> str:
    others = sorted(
        (p for p in path.parent.glob("*.ckpt") if p.resolve() != path.resolve()), key=lambda p: p.stat().st_mtime
    )
    if others:
        return f"Use the previous one, e.g. --ckpt_path={others[-1]}"
    return f"No other checkpoint is in {path.parent}: start afresh without --ckpt_path."


def checkpoint_directory(trainer: Any) -> Path:
    """Where a run's checkpoints go: its ModelCheckpoint's folder, else ``default_root_dir/checkpoints``."""
    callback = trainer.checkpoint_callback
    if callback is not None and getattr(callback, "dirpath", None):
        return Path(callback.dirpath)
    return Path(trainer.default_root_dir) / "checkpoints"


def model_class_path(model_class: type) -> str:
    """``module.Class`` of a model class, as checkpoints record it (e.g. ``lightning_modules.dcgan.DCGAN``)."""
    return f"{model_class.__module__}.{model_class.__qualname__}"


def check_written_by(checkpoint: dict[str, Any], model_class: type, path: str | Path | None) -> None:
    """Refuse a checkpoint that another model class wrote (one that records no class is let through)."""
    writer = checkpoint.get(MODEL_CLASS_KEY)
    if writer is None or writer == model_class_path(model_class):
        return
    writer_name, run_name = writer.rpartition(".")[2], model_class.__name__
    raise ValueError(
        f"checkpoint '{path}' was written by {writer_name}, this run is {run_name}: pass a checkpoint of a "
        f"{run_name} run as --ckpt_path, or resume the {writer_name} run with its own config."
    )


def run_state(module: Any) -> dict[str, Any]:
    """The checkpoint entries that make a resume continue the run ``module`` is in: the class that
    wrote it (``MODEL_CLASS_KEY``: a resume of another model is refused), the torch, NumPy, Python
    (and CUDA) RNG states (a resumed run draws the same noise and shuffles as an uninterrupted
    one), and the W&B run id of its first ``WandbLogger`` that has one (a resumed run, anywhere,
    continues that W&B run: ``lightning_modules.cli.CLI.before_fit``). Tensors and plain values
    only, which ``torch.load(weights_only=True)`` accepts."""
    state = {
        MODEL_CLASS_KEY: model_class_path(type(module)),
        "rng_states": {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_rng_state(),
            "python": random.getstate(),
            **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}),
        },
    }
    run_ids = [logger.version for logger in module.loggers if isinstance(logger, WandbLogger) and logger.version]
    if run_ids:
        state["wandb_run_id"] = run_ids[0]
    return state


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set the global RNGs to ``run_state``'s ``rng_states`` (CUDA's only on as many devices as saved them)."""
    torch.set_rng_state(states["torch"])
    _set_numpy_rng_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def _numpy_rng_state() -> dict:
    """NumPy's global RNG state as tensors and numbers, which ``torch.load(weights_only=True)`` accepts."""
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}


def _set_numpy_rng_state(state: dict) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["position"], state["has_gauss"], state["cached_gaussian"]))


def check_network_shapes(checkpoint: dict, module: Any, path: Any) -> None:
    """Refuse a checkpoint whose networks have other shapes than ``module``'s (raises ValueError),
    naming the settings it was written with that differ from this run's (on resume, settings like
    learning rates, clipping, steps and cadences may change; those that shape the networks may not)."""
    shapes = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    saved = checkpoint.get("state_dict", {})
    mismatched = [key for key, value in saved.items() if key in shapes and tuple(value.shape) != shapes[key]]
    if not mismatched:
        return
    key = mismatched[0]
    then = checkpoint.get("hyper_parameters", {})
    differ = {
        name: value for name, value in then.items()
        if not name.startswith("_") and name in module.hparams and as_config(module.hparams[name]) != as_config(value)
    }
    settings = ", ".join(f"{name}={value}" for name, value in differ.items())
    now = ", ".join(f"{name}={as_config(module.hparams[name])}" for name in differ)
    fix = " ".join(f"--model.init_args.{name}={value}" for name, value in differ.items())
    raise ValueError(
        f"checkpoint '{path}' holds networks of other shapes than this run builds ({key}: {tuple(saved[key].shape)} "
        f"in the checkpoint, {shapes[key]} here). "
        + (f"It was written with {settings}; this run has {now}: pass {fix}, " if differ else "Pass ")
        + "the settings it was written with (those that shape the networks must match on resume)."
    )


def as_config(value: Any) -> Any:
    """A setting as a config writes it (dataclasses as dicts, tuples as lists), for comparisons and messages."""
    if hasattr(value, "__dataclass_fields__"):
        value = vars(value)
    if isinstance(value, dict):
        return {key: as_config(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_config(item) for item in value]
    return value


def plain_hyperparameter(value: Any) -> Any:
    """jsonargparse's constrained types (PositiveInt, ...) as the built-in types they extend (lists
    and tuples item by item), so that checkpoints load with ``torch.load(weights_only=True)``."""
    for plain in (bool, int, float, str):
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, (list, tuple)):
        return type(value)(plain_hyperparameter(v) for v in value)
    return value
