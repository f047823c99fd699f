"""Exponential moving average of the sampling network (``GenerativeModule``'s ``ema_decay``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class ExponentialMovingAverage(AveragedModel):
    """torch's ``AveragedModel`` with an EMA of ``decay`` over parameters and buffers, whose update
    reads nothing on the host: ``AveragedModel.update_parameters`` branches on its device counter
    ``n_averaged`` (a synchronisation per update on a GPU). Same rule: the first update copies the
    network, the later ones set ``average = decay * average + (1 - decay) * current``."""

    def __init__(self, network: nn.Module, decay: float) -> None:
        super().__init__(network, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.decay = decay

    @torch.no_grad()
    def update_parameters(self, model: nn.Module, applied: Tensor | None = None) -> None:
        """One EMA update towards ``model``; ``applied`` (a 0-dim bool tensor) False: none, decided
        on the device (an update skipped there, ``NonfinitePolicy.record``)."""
        current = [t.detach() for t in (*model.parameters(), *model.buffers())]
        averaged = [t.detach() for t in (*self.module.parameters(), *self.module.buffers())]
        weight = torch.where(self.n_averaged == 0, 1.0, 1.0 - self.decay).to(torch.get_default_dtype())
        if applied is not None:
            weight = weight * applied
        floating = [(a, c) for a, c in zip(averaged, current) if a.is_floating_point()]
        if floating:
            torch._foreach_lerp_([a for a, _ in floating], [c for _, c in floating], weight)
        for a, c in zip(averaged, current):
            if not a.is_floating_point():  # batch norm's counters, as AveragedModel's EMA does them
                a.copy_(a * (1 - weight) + c * weight)
        self.n_averaged += 1 if applied is None else applied.long()


def exponential_moving_average(network: nn.Module, decay: float) -> ExponentialMovingAverage:
    """A frozen copy of ``network`` whose ``update_parameters(network)`` sets each parameter and
    buffer to ``decay * average + (1 - decay) * current`` (buffers such as batch-norm statistics are
    averaged too). ``decay`` in (0, 1), e.g. 0.999."""
    return ExponentialMovingAverage(network, decay).requires_grad_(False)
