"""Exponential moving average of the sampling network (``GenerativeModule``'s ``ema_decay``)."""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def exponential_moving_average(network: nn.Module, decay: float) -> AveragedModel:
    """A frozen copy of ``network`` whose ``update_parameters(network)`` sets each parameter and
    buffer to ``decay * average + (1 - decay) * current`` (torch's ``AveragedModel``; buffers such
    as batch-norm statistics are averaged too). ``decay`` in (0, 1), e.g. 0.999."""
    average = AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    return average.requires_grad_(False)
