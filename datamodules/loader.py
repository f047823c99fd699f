"""Data loading that resumes exactly: a run restarted from any checkpoint, mid-epoch or at an
epoch's end, sees the batches the uninterrupted run would have seen.

Lightning saves a training loader's ``state_dict`` in every checkpoint and hands it back to
``load_state_dict`` before iterating again. The position is two numbers, the epoch and the batches
already taken in it, because each epoch's order is a pure function of (seed, epoch), as in
torch's DistributedSampler, which the sampler here extends (so Lightning keeps it under DDP).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class ResumableSampler(DistributedSampler):
    """DistributedSampler (this process's shard of a per-epoch permutation drawn from seed + epoch)
    that can start partway into an epoch. Works in one process too (one shard)."""

    def __init__(self, dataset: Dataset, shuffle: bool, seed: int) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        super().__init__(
            dataset,
            num_replicas=dist.get_world_size() if distributed else 1,
            rank=dist.get_rank() if distributed else 0,
            shuffle=shuffle,
            seed=seed,
        )
        #: Indices of the shard to skip at the next iteration (a resumed epoch's taken batches).
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[self.skip :]
        self.skip = 0
        return iter(indices)


class ResumableDataLoader(DataLoader):
    """A DataLoader with a ``ResumableSampler`` and a ``state_dict`` of (epoch, batches taken).

    Args:
        dataset: The map-style dataset.
        shuffle: Shuffle every epoch (a fresh permutation per epoch).
        seed: Seed of the permutations; default: the run's ``seed_everything`` seed, as Lightning's
            own distributed samplers use. Worker seeds come from it too, never from the global RNG,
            so loading data draws nothing from the model's random stream.
        **kwargs: Any other DataLoader argument.
    """

    def __init__(self, dataset: Dataset, *, shuffle: bool = False, seed: int | None = None, **kwargs: Any) -> None:
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if seed is None else seed
        kwargs.setdefault("sampler", ResumableSampler(dataset, shuffle, seed))
        kwargs.setdefault("generator", torch.Generator().manual_seed(seed))
        super().__init__(dataset, **kwargs)
        self._batches_taken = 0

    def __iter__(self) -> Iterator:
        # Lightning's predict loop rebuilds the loader around a batch sampler (batch_size None); it never resumes
        skip = getattr(self.sampler, "skip", 0)
        self._batches_taken = skip // self.batch_size if skip else 0
        for batch in super().__iter__():
            self._batches_taken += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Where the loader is: its sampler's epoch and the batches taken in it (a finished epoch: the next one, none taken)."""
        epoch, taken = getattr(self.sampler, "epoch", 0), self._batches_taken
        if taken >= len(self):  # the epoch is over: resume at the start of the next one
            epoch, taken = epoch + 1, 0
        return {"epoch": epoch, "batches_taken": taken}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at :meth:`state_dict`'s position: the same epoch's order, its taken batches skipped."""
        self.sampler.set_epoch(state["epoch"])
        self.sampler.skip = state["batches_taken"] * self.batch_size
        self._batches_taken = state["batches_taken"]
