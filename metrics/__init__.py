"""Metrics: sample quality (FID/KID); disentanglement scores join them."""

from metrics.fid import (
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    SampleQuality,
    load_inception,
    save_random_inception,
    to_uint8_rgb,
)

__all__ = [
    "INCEPTION_WEIGHTS_FILE",
    "INCEPTION_WEIGHTS_URL",
    "SampleQuality",
    "load_inception",
    "save_random_inception",
    "to_uint8_rgb",
]
