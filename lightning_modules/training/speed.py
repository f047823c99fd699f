"""Switches that make a training step faster without changing the algorithm: ``GenerativeModule``'s
``compile`` (torch.compile of the trained networks) and ``channels_last`` (the README's "Speed on a
GPU"; ``OptimizerConfig.fused`` and ``nonfinite_sync`` are the others). Each changes results only
within float rounding, and is off by default."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import Tensor, nn

#: torch.compile's modes: "reduce-overhead" adds CUDA graphs (one launch per compiled graph on a GPU).
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


def compile_networks(networks: Iterable[nn.Module], mode: CompileMode, backend: str = "inductor") -> None:
    """torch.compile each network in place (``nn.Module.compile``: the same parameters, state_dict
    keys and checkpoints as the eager network). Compiled on its first call; ``mode`` is inductor's."""
    for network in networks:
        network.compile(backend=backend, **({"mode": mode} if backend == "inductor" else {}))


def to_channels_last(networks: Iterable[nn.Module]) -> None:
    """The networks' 4-D weights in channels-last (NHWC) memory order, which cuDNN's convolutions run
    fastest in, with tensor cores; with inputs in the same order (:func:`channels_last_batch`), the
    activations follow."""
    for network in networks:
        network.to(memory_format=torch.channels_last)


def channels_last_batch(batch: Any) -> Any:
    """A data batch with its images (4-D tensors) in channels-last memory order; the rest as it is."""
    if isinstance(batch, Tensor):
        return batch.contiguous(memory_format=torch.channels_last) if batch.ndim == 4 else batch
    if isinstance(batch, (list, tuple)):
        return type(batch)(channels_last_batch(item) for item in batch)
    return batch
