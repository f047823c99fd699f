"""Plumbing shared by every datamodule: value ranges, splits, batched datasets, loaders."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn
from jsonargparse.typing import NonNegativeInt, PositiveInt
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from .loader import ResumableDataLoader
from torchvision.transforms.v2.functional import pil_to_tensor

ValueRange = tuple[float, float]
VALUE_RANGES: tuple[ValueRange, ...] = ((-1.0, 1.0), (0.0, 1.0))
Batch = tuple[Tensor, Tensor]


def check_value_range(value_range: Sequence[float]) -> ValueRange:
    """Models pick their output activation (tanh / sigmoid) from this, so only two ranges exist.

    Raises:
        ValueError: a range other than (-1, 1) and (0, 1).
    """
    normalised = tuple(float(v) for v in value_range)
    if normalised not in VALUE_RANGES:
        raise ValueError(f"value_range must be (-1.0, 1.0) or (0.0, 1.0), got {tuple(value_range)!r}")
    return normalised  # type: ignore[return-value]


def unit_to_range(x: Tensor, value_range: ValueRange) -> Tensor:
    """Map values in [0, 1] affinely onto `value_range`."""
    low, high = value_range
    return x * (high - low) + low


def uint8_to_range(x: Tensor, value_range: ValueRange) -> Tensor:
    """Decode 8-bit pixels only per batch, so datasets can keep the compact uint8 copy."""
    return unit_to_range(x.float() / 255.0, value_range)


def split_indices(n: int, holdout: int, seed: int) -> tuple[Tensor, Tensor]:
    """Seed-determined (train, held-out) partition of range(n), independent of the global RNG.

    Raises:
        ValueError: ``holdout`` not below ``n``.
    """
    if holdout >= n:
        raise ValueError(f"cannot hold out {holdout} of {n} samples; lower val_size")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[holdout:], perm[:holdout]


def missing_dataset_error(root: Path, expected: Iterable[str], where: str) -> FileNotFoundError:
    """One message with everything needed to fix a missing dataset: the paths and where to get it."""
    listing = "\n".join(f"  {root / name}" for name in expected)
    return FileNotFoundError(f"dataset not found in '{root}'; expected:\n{listing}\n{where}")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, as torch's DataLoader counts them)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def files_fingerprint(root: Path, skip: Path | None = None) -> str:
    """The files under ``root`` (or ``root`` itself, a file) by name relative to it, size and
    modification time (ns), hashed: any file added, removed, renamed, rewritten or touched changes
    it; reading no file, it costs one ``stat`` per file (about 1 s per 200,000 on a local disk).
    Symbolic links to files count as their targets; linked folders are not entered (as
    ``Path.rglob``). ``skip`` (e.g. a cache folder inside ``root``) is left out."""
    root = root.expanduser()
    if root.is_file():
        status = root.stat()
        return f"file:{status.st_size}:{status.st_mtime_ns}"
    if not root.is_dir():
        return "absent"
    skip = skip.expanduser().resolve() if skip is not None else None
    entries = []
    for folder, subfolders, names in os.walk(root):
        if skip is not None:
            subfolders[:] = [d for d in subfolders if Path(folder, d).resolve() != skip]
        relative = os.path.relpath(folder, root)
        for name in names:
            try:
                status = os.stat(os.path.join(folder, name))
            except FileNotFoundError:  # a dangling link: nothing a dataset can read
                continue
            entries.append(f"{os.path.join(relative, name)}\0{status.st_size}\0{status.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(sorted(entries)).encode())
    return f"{len(entries)} files/sha256:{digest.hexdigest()}"


def pass_batch(batch: Batch) -> Batch:
    """Collate for `BatchedDataset`: `__getitems__` already returns the stacked batch."""
    return batch


class BatchedDataset(Dataset[Batch], ABC):
    """A dataset that builds whole batches at once.

    torch's DataLoader fetcher calls `__getitems__` with the batch's indices when it exists,
    which turns per-sample Python calls into a few tensor operations per batch.
    """

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitems__(self, indices: Sequence[int]) -> Batch: ...

    def __getitem__(self, index: int) -> Batch:
        x, y = self.__getitems__([index])
        return x[0], y[0]


class TensorPairDataset(BatchedDataset):
    """In-memory (x, y) tensors; `transform` is applied to each batch of x (e.g. uint8 -> range).

    Raises:
        ValueError: ``x`` and ``y`` of different lengths.
    """

    def __init__(self, x: Tensor, y: Tensor, transform: Callable[[Tensor], Tensor] | None = None) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y lengths differ: {len(x)} != {len(y)}")
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.long)
        x = self.x[index]
        return (x if self.transform is None else self.transform(x)), self.y[index]


def _read_rgb(path: str) -> Tensor:
    """uint8 [3, H, W]; PIL because torchvision.io's decoders are deprecated since 0.29."""
    with Image.open(path) as image:
        return pil_to_tensor(image.convert("RGB"))


class ImageFileDataset(BatchedDataset):
    """Image files decoded to RGB uint8, transformed (crop/resize) one by one, scaled per batch.

    Raises:
        ValueError: ``paths`` and ``labels`` of different lengths.
    """

    def __init__(
        self,
        paths: Sequence[str],
        labels: Tensor,
        transform: Callable[[Tensor], Tensor],
        value_range: ValueRange,
    ) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"paths and labels lengths differ: {len(paths)} != {len(labels)}")
        self.paths, self.labels = list(paths), labels
        self.transform, self.value_range = transform, value_range

    def __len__(self) -> int:
        return len(self.paths)

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        images = torch.stack(
            [self.transform(_read_rgb(self.paths[i])) for i in indices]
        )
        labels = self.labels[torch.as_tensor(indices, dtype=torch.long)]
        return uint8_to_range(images, self.value_range), labels


class BaseDataModule(pl.LightningDataModule):
    """Builds the loaders from the `train_set` / `val_set` / `test_set` that `setup` creates.

    The loaders are ``ResumableDataLoader``s: every checkpoint holds their position (sampler state
    and batches taken), so a run resumed mid-epoch continues with the batch after the last one it
    trained on, in the uninterrupted run's order.

    Args:
        batch_size: samples per batch (per process under DDP).
        num_workers: DataLoader worker processes (0 loads in the main process); at most the CPUs
            this process may use, so a config written for a bigger machine runs on a smaller one.
        seed: seed of the held-out splits, independent of the global RNG.
        value_range: pixel range of the returned images, (-1, 1) or (0, 1).
    """

    data_shape: tuple[int, ...]

    def __init__(
        self,
        *,
        batch_size: PositiveInt = 64,
        num_workers: NonNegativeInt = 0,
        seed: int = 0,
        value_range: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.value_range = None if value_range is None else check_value_range(value_range)
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def check_inputs(self, stage: str) -> list[str]:
        """What is wrong with the data files ``stage`` reads (missing, truncated, corrupt), each one
        message naming the files and the fix; found by ``setup``, which keeps what it read."""
        try:
            self.setup(stage)
        except (FileNotFoundError, ValueError) as error:
            return [str(error)]
        too_small = self._train_split_too_small() if stage == "fit" else None
        return [too_small] if too_small else []

    def _train_split_too_small(self) -> str | None:
        """Why the training loader would yield no batch (it drops the last incomplete one), or None."""
        size = len(self._split("train"))
        if size >= self.batch_size:
            return None
        return (
            f"{type(self).__name__}: the train split has {size} samples, fewer than its batch_size {self.batch_size}, "
            "and the training loader drops the last incomplete batch, so it would yield none: "
            f"set --data.init_args.batch_size to at most {size}, or give it more data"
        )

    def data_settings(self) -> dict[str, Any]:
        """The settings that choose this datamodule's data and how it renders it (files, image size,
        crop, held-out size; not the loader's batch size or workers), JSON-able, a data folder or
        file as a ``Path`` (:meth:`dataset_fingerprint` reads its files). Every datamodule states its
        own: what is not here cannot tell two datasets apart.

        Raises:
            NotImplementedError: a datamodule that does not state them (FID's cache key needs them).
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not state its data_settings(): return the settings that choose its data "
            "(folders as Paths, image size, crop, held-out size)"
        )

    def split_dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (``"train"``, ``"val"`` or ``"test"``), set up on first use.

        Raises:
            ValueError: this datamodule has no such split.
        """
        if getattr(self, f"{split}_set", None) is None:
            self.setup("fit")
        dataset = getattr(self, f"{split}_set", None)
        if dataset is None:
            raise ValueError(f"{type(self).__name__} has no {split!r} split (its splits: train, val, test)")
        return dataset

    def subset_loader(self, split: str, indices: Sequence[int], batch_size: int, *, seed: int = 0,
                      num_workers: int | None = None) -> DataLoader:
        """Batches ``(x, y)`` of the samples ``indices`` of ``split``, in that order, as the training
        loader builds them (x in ``value_range``); ``num_workers`` defaults to the datamodule's, and
        the workers' seeds come from ``seed``, not from the global RNG."""
        dataset = Subset(self.split_dataset(split), [int(i) for i in indices])
        return DataLoader(
            dataset, batch_size=batch_size, num_workers=min(self.num_workers if num_workers is None else num_workers, usable_cpus()),
            collate_fn=pass_batch, generator=torch.Generator().manual_seed(seed),
        )

    def dataset_fingerprint(self, split: str, ignore: Path | None = None) -> dict[str, Any]:
        """What identifies the samples of ``split`` as this datamodule serves them (e.g. the key of
        statistics computed from them), JSON-able: the datamodule's class, the split, its size, the
        data shape, value range and split seed, and its :meth:`data_settings`, a folder by its files
        (names relative to it, sizes and modification times: :func:`files_fingerprint`), not by its
        path, so the same files elsewhere are the same data. ``ignore``: a folder to leave out of
        the data folders (e.g. a cache written inside one)."""
        settings = {
            name: files_fingerprint(value, skip=ignore) if isinstance(value, Path) else value
            for name, value in self.data_settings().items()
        }
        return {
            "datamodule": f"{type(self).__module__}.{type(self).__qualname__}",
            "split": split,
            "size": len(self.split_dataset(split)),
            "data_shape": list(self.data_shape),
            "value_range": None if self.value_range is None else list(self.value_range),
            "seed": self.seed,
            "settings": settings,
        }

    def train_dataloader(self) -> ResumableDataLoader:
        """The training loader: shuffled, the last incomplete batch dropped, resumable mid-epoch (:class:`ResumableDataLoader`).

        Raises:
            ValueError: a train split smaller than ``batch_size`` (it would yield no batch).
        """
        too_small = self._train_split_too_small()
        if too_small:
            raise ValueError(too_small)
        return self._loader(self._split("train"), train=True)

    @property
    def val_dataloader(self) -> Callable[[], ResumableDataLoader]:
        """The validation loader; to a trainer, offered for the ``validate`` command only: fit has
        no validation loop (the models are scored during fit by the evaluation callbacks, on their
        step cadence), and Lightning reads LightningDataModule's own as "no loader"."""
        if self.trainer is not None and self.trainer.state.fn != TrainerFn.VALIDATING:
            return super().val_dataloader
        return self._val_dataloader

    def _val_dataloader(self) -> ResumableDataLoader:
        return self._loader(self._split("val"), train=False)

    def test_dataloader(self) -> ResumableDataLoader:
        return self._loader(self._split("test"), train=False)

    def predict_dataloader(self) -> ResumableDataLoader:
        """``predict`` runs over the test split: per batch, as many samples, and the batch's codes
        and reconstructions for a model with an encoder (``GenerativeModule.predict_step``)."""
        return self._loader(self._split("test"), train=False)

    def _split(self, name: str) -> Dataset:
        dataset = getattr(self, f"{name}_set")
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}: call setup() before asking for the {name} loader")
        return dataset

    def _loader(self, dataset: Dataset, *, train: bool) -> ResumableDataLoader:
        num_workers = min(self.num_workers, usable_cpus())
        return ResumableDataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=pass_batch,
        )
