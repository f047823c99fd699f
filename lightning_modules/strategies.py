"""``gan_ddp``: data-parallel training for models with several networks and optimizers.

torch's DistributedDataParallel all-reduces in backward hooks and expects every backward to
reach every parameter. A GAN's discriminator step never reaches the generator, and its generator
step should not produce discriminator gradients at all, so plain DDP fails; the usual escape,
``find_unused_parameters=True``, walks the autograd graph after every forward and all-reduces
every parameter of every network on every backward.

This strategy keeps Lightning's DDP process management (launch, process group, samplers,
rank-zero logging, checkpoint saving) but does not wrap the module. Instead
:meth:`GenerativeModule.optimize` all-reduces exactly the gradients of the network about to step,
as one flat buffer, right before its optimizer step: identical updates on every rank, and no
communication for networks that did not take part. ``bench/ddp.py`` measures it against
``ddp_find_unused_parameters_true``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from pytorch_lightning.overrides.distributed import _sync_module_states
from pytorch_lightning.strategies import DDPStrategy, StrategyRegistry
from torch.nn import Module


class GANDDPStrategy(DDPStrategy):
    """DDP process management without torch's DDP wrapper (see the module docstring)."""

    strategy_name = "gan_ddp"

    def _setup_model(self, model: Module) -> Module:
        # What DDP's constructor would do: start every rank from rank 0's weights and buffers.
        _sync_module_states(model)
        return model

    def _register_ddp_hooks(self) -> None:
        """Communication hooks belong to the DDP wrapper, which this strategy does not use."""

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        output = super().training_step(*args, **kwargs)
        broadcast_buffers(self.lightning_module)
        return output


def broadcast_buffers(module: Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (e.g. BatchNorm statistics) to every rank, one broadcast per
    dtype. DDP does it before each forward; after each step instead, ranks also agree at the end."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for buffer in module.buffers():
        by_dtype.setdefault(buffer.dtype, []).append(buffer)
    for buffers in by_dtype.values():
        flat = torch.cat([b.reshape(-1) for b in buffers])
        dist.broadcast(flat, src)
        for buffer, chunk in zip(buffers, flat.split([b.numel() for b in buffers])):
            buffer.copy_(chunk.view_as(buffer))


StrategyRegistry.register(
    "gan_ddp",
    GANDDPStrategy,
    description="DDP that averages each stepped network's gradients itself (no DDP wrapper)",
)
StrategyRegistry.register(
    "gan_ddp_spawn",
    GANDDPStrategy,
    description="gan_ddp with processes started by spawn",
    start_method="spawn",
)
