"""Switches that make a training step faster without changing the algorithm: ``GenerativeModule``'s
``compile`` (torch.compile of the trained networks) and ``channels_last`` (the README's "Speed on a
GPU"; ``OptimizerConfig.fused`` and ``nonfinite_sync`` are the others). Each changes results only
within float rounding, and is off by default."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

#: torch.compile's modes: "reduce-overhead" adds CUDA graphs (one launch per compiled graph on a GPU).
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]


def compile_networks(networks: Iterable[nn.Module], mode: CompileMode, backend: str = "inductor") -> None:
    """torch.compile each network in place (``nn.Module.compile``: the same parameters, state_dict
    keys and checkpoints as the eager network). Compiled on its first call; ``mode`` is inductor's."""
    for network in networks:
        network.compile(backend=backend, **({"mode": mode} if backend == "inductor" else {}))


def to_channels_last(networks: Iterable[nn.Module]) -> None:
    """The networks' 4-D weights in channels-last (NHWC) memory order, which cuDNN's convolutions run
    fastest in, with tensor cores. A convolution with such weights gives channels-last outputs
    whatever its input's order (torch's rule for cuDNN and oneDNN), so the data batches need no
    conversion (a model hook for it would also displace a datamodule's batch-transfer hook)."""
    for network in networks:
        network.to(memory_format=torch.channels_last)
