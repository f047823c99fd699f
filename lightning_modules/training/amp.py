"""Mixed precision with several optimizers per backward pass."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_loss_scale_update(scaler: torch.amp.GradScaler | None) -> Iterator[None]:
    """Within the block, the GradScaler's ``update`` waits: it runs once, when the block ends.

    Lightning's AMP plugin updates the loss scale after each optimizer step. The optimizers of one
    backward pass must all unscale by the scale it used: update once, after the last of them
    (torch's multi-optimizer AMP recipe, "Working with multiple models, losses, and optimizers"),
    with the overflow checks of all of them. Lightning has no setting for this, so the scaler's
    ``update`` is held back on the instance for the block. ``None`` (no float16 AMP): nothing to do.
    """
    if scaler is None:
        yield
        return
    update = scaler.update
    scaler.update = lambda new_scale=None: None
    try:
        yield
    finally:
        del scaler.update  # the class's method again
    update()
