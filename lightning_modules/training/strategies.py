"""``gan_ddp``: data-parallel training for models with several networks and optimizers.

torch's DistributedDataParallel all-reduces in backward hooks and expects every backward to
reach every parameter. A GAN's discriminator step never reaches the generator, and its generator
step should not produce discriminator gradients at all, so plain DDP fails; the usual escape,
``find_unused_parameters=True``, walks the autograd graph after every forward and all-reduces
every parameter of every network on every backward.

This strategy keeps Lightning's DDP process management (launch, process group, samplers,
rank-zero logging, checkpoint saving) but does not wrap the module. Instead
:meth:`GenerativeModule.optimize` all-reduces (:func:`average_gradients`) exactly the gradients of
the network about to step, as one flat buffer, right before its optimizer step: identical updates on every rank, and no
communication for networks that did not take part. ``bench/ddp.py`` measures it against
``ddp_find_unused_parameters_true``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from pytorch_lightning.strategies import (
    DDPStrategy,
    DeepSpeedStrategy,
    FSDPStrategy,
    ModelParallelStrategy,
    Strategy,
    StrategyRegistry,
)

# Private: Lightning has no public way to ask which strategy it would pick (gan_strategy_for).
from pytorch_lightning.trainer.connectors.accelerator_connector import (
    _AcceleratorConnector,
)
from torch import Tensor
from torch.nn import Module
from torch.nn.parallel import DistributedDataParallel


class GANDDPStrategy(DDPStrategy):
    """DDP process management without torch's DDP wrapper (see the module docstring)."""

    strategy_name = "gan_ddp"

    # _setup_model and _register_ddp_hooks are DDPStrategy's (private) steps that wrap the model in
    # torch's DDP: Lightning offers no public way for a strategy to leave the model unwrapped.
    def _setup_model(self, model: Module) -> Module:
        # What DDP's constructor would do: start every rank from rank 0's weights and buffers.
        broadcast_tensors([*model.parameters(), *model.buffers()])
        return model

    def _register_ddp_hooks(self) -> None:
        """Communication hooks belong to the DDP wrapper, which this strategy does not use."""

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        output = super().training_step(*args, **kwargs)
        broadcast_buffers(self.lightning_module)
        return output


def average_gradients(optimizer: torch.optim.Optimizer, flags: Tensor, strategy: Strategy) -> Tensor:
    """Average the gradients of ``optimizer``'s parameters across processes, as one flat buffer with
    ``flags`` (a float tensor [k], e.g. the non-finite-loss flag) appended, so that every process
    takes the same decision on them at no extra cost. Returns ``flags`` summed over processes.

    One process, or torch's DDP wrapper (``ddp_find_unused_parameters_true``: it has averaged the
    gradients in backward): only ``flags`` is summed. Each backward may touch any subset of the
    networks, and only the network about to step pays for communication.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flags
    if isinstance(strategy.model, DistributedDataParallel):
        dist.all_reduce(flags)
        return flags
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads] + [flags.to(grads[0] if grads else flags)])
    dist.all_reduce(flat)
    flat[: -len(flags)] /= dist.get_world_size()
    for grad, chunk in zip(grads, flat[: -len(flags)].split([g.numel() for g in grads])):
        grad.copy_(chunk.view_as(grad))
    return flat[-len(flags):].to(flags)


def check_wrapped_model(strategy: Strategy) -> None:
    """Raise RuntimeError when ``strategy`` wrapped the model in torch's DDP without
    ``find_unused_parameters``: its backward hooks wait for gradients of every network, and a GAN's
    discriminator step gives none to the generator (the run would hang or fail in backward)."""
    wrapped = strategy.model
    if isinstance(wrapped, DistributedDataParallel) and not wrapped.find_unused_parameters:
        raise RuntimeError(
            "Plain DDP cannot train a model whose backward passes each use only some networks. "
            "Use `trainer.strategy: gan_ddp` (averages each stepped network's gradients itself), "
            "or `ddp_find_unused_parameters_true` (slower: all-reduces every network every step)."
        )


def broadcast_buffers(module: Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (e.g. BatchNorm statistics) to every rank. DDP does it before
    each forward; after each step instead, ranks also agree at the end."""
    broadcast_tensors(list(module.buffers()), src)


@torch.no_grad()
def broadcast_tensors(tensors: list[Tensor], src: int = 0) -> None:
    """Copy rank ``src``'s values of ``tensors`` (parameters, buffers) into every rank's, in place,
    one broadcast per dtype. Nothing to do on one process."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    by_dtype: dict[torch.dtype, list[Tensor]] = {}
    for tensor in tensors:
        by_dtype.setdefault(tensor.dtype, []).append(tensor)
    for group in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.broadcast(flat, src)
        for tensor, chunk in zip(group, flat.split([t.numel() for t in group])):
            tensor.copy_(chunk.view_as(tensor))


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
StrategyRegistry.register(
    "gan_ddp_fork",
    GANDDPStrategy,
    description="gan_ddp with processes started by fork (notebooks)",
    start_method="fork",
)

#: Lightning's data-parallel strategies (torch's DDP wrapper) and ours with the same start method.
GAN_DDP_OF = {"ddp": "gan_ddp", "ddp_spawn": "gan_ddp_spawn", "ddp_fork": "gan_ddp_fork", "ddp_notebook": "gan_ddp_fork"}


def gan_strategy_for(trainer_config: dict[str, Any]) -> str | None:
    """The gan_ddp strategy to use instead of the one the trainer config asks for, or None to keep it.

    A strategy left at ``auto`` is what Lightning would choose for the config's accelerator, devices
    and nodes (``ddp``, or ``ddp_fork`` in a notebook, for more than one process), asked of
    Lightning's own connector; ``ddp``, ``ddp_spawn`` and ``ddp_fork``/``ddp_notebook`` map to the
    gan_ddp strategy with the same start method.
    """
    strategy = trainer_config.get("strategy", "auto")
    if strategy == "auto":
        try:
            connector = _AcceleratorConnector(
                devices=trainer_config.get("devices", "auto"),
                num_nodes=trainer_config.get("num_nodes", 1),
                accelerator=trainer_config.get("accelerator", "auto"),
            )
        except Exception:  # a bad accelerator or device count: the trainer reports it
            return None
        strategy = connector._strategy_flag
    return GAN_DDP_OF.get(strategy) if isinstance(strategy, str) else None


def strategy_problem(strategy: str | Strategy) -> str | None:
    """Why ``trainer.strategy`` cannot train these models, or None."""
    if isinstance(strategy, str):
        if strategy not in StrategyRegistry:
            return None  # the trainer names the registered ones
        kind = StrategyRegistry[strategy]["strategy"]
    else:
        kind = type(strategy)
    name = strategy if isinstance(strategy, str) else kind.__name__
    if issubclass(kind, DeepSpeedStrategy):
        return f"trainer.strategy '{name}' steps one optimizer, and these models step one per network: use gan_ddp (or leave trainer.strategy out)."
    if issubclass(kind, (FSDPStrategy, ModelParallelStrategy)):
        return (f"trainer.strategy '{name}' gathers sharded weights in the forward of the wrapped model, which the models' "
                f"steps bypass (they call each network directly): use gan_ddp (or leave trainer.strategy out).")
    # _ddp_kwargs (private): a DDPStrategy instance shows its find_unused_parameters nowhere else.
    if kind is DDPStrategy and not isinstance(strategy, str) and not strategy._ddp_kwargs.get("find_unused_parameters"):
        return (f"trainer.strategy {name} (torch's DDP wrapper) cannot train a model whose backward passes each use "
                f"only some networks: use gan_ddp (or leave trainer.strategy out).")
    return None
