"""Checkpoint files that survive clusters: written atomically, read without running pickled code,
and refused with one clear message when truncated, unsafe, or written by another model class.

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
import uuid
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning_fabric.plugins import TorchCheckpointIO
from lightning_fabric.utilities.cloud_io import _load as pl_load
from lightning_fabric.utilities.cloud_io import get_filesystem

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
    """``torch.load(path, weights_only=True)``; a file that fails is named, with why and what to do."""
    try:
        return pl_load(path, map_location=map_location, weights_only=True)
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
