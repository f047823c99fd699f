"""Whether a model and a datamodule fit together, asked before a run starts (the CLI's pre-flight)
and again at ``setup``."""

from __future__ import annotations

from typing import Any


def data_mismatches(model: Any, datamodule: Any) -> list[str]:
    """What keeps ``model`` from training on ``datamodule``, one message per setting naming it and
    the fix: the shape of one datum (``data_shape``, e.g. (C, H, W)) and the range of its values
    (the data's ``value_range`` against the model's ``output_range``, e.g. (-1.0, 1.0)). A
    datamodule that does not say one of them is not checked for it; none: an empty list."""
    model_name, data_name = type(model).__name__, type(datamodule).__name__
    checks = {
        "data_shape": (model.data_shape, lambda theirs: (
            f"{model_name} is built for data of shape {tuple(model.data_shape)} but {data_name} yields {theirs}: "
            f"set the model's data_shape (or the data's image_size) so they agree.")),
        "value_range": (model.output_range, lambda theirs: (
            f"{model_name} generates values in {tuple(model.output_range)} but {data_name} yields value_range={theirs}: "
            f"set the data's value_range to {list(model.output_range)}.")),
    }
    problems = []
    for attribute, (ours, message) in checks.items():
        theirs = getattr(datamodule, attribute, None)
        if theirs is not None and tuple(theirs) != tuple(ours):
            problems.append(message(tuple(theirs)))
    return problems
