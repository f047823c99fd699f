"""Random views of a batch of images for a contrastive loss: SimCLR's augmentations (Chen et al.
2020, appendix A; ContraD, Jeong & Shin 2021, uses them for its discriminator) from torchvision's
transforms v2, on the batch's own device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.transforms import v2


class RandomViews(nn.Module):
    """images [B, C, H, W] in ``value_range`` -> one random view of each, same shape and range:
    a random resized crop, a horizontal flip (optional), and with probability 0.8 a colour jitter
    of strength s (brightness, contrast, saturation s, hue s/4; brightness and contrast only for
    one channel), then for colour images grayscale with probability 0.2.

    Args:
        size: Height and width of the images.
        channels: 1 (grayscale) or 3 (RGB).
        value_range: The images' range; the jitter works in [0, 1] and the view is mapped back.
        crop_scale: The crop's area as a fraction of the image, drawn from this range (SimCLR:
            0.08-1 on ImageNet; ContraD: 0.2-1 at 32 px).
        color_jitter: s (SimCLR and ContraD: 0.4 below ImageNet's 0.8, 0 for none).
        horizontal_flip: Flip half of the views (no for data whose mirror image is another class).
    """

    def __init__(
        self,
        size: int,
        channels: int,
        value_range: tuple[float, float],
        crop_scale: Sequence[float] = (0.2, 1.0),
        color_jitter: float = 0.4,
        horizontal_flip: bool = True,
    ) -> None:
        super().__init__()
        low, high = crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must be two fractions of the image, 0 < min <= max <= 1; got {list(crop_scale)}")
        self.value_range = value_range
        s = color_jitter
        jitter = v2.ColorJitter(s, s, s, s / 4) if channels == 3 else v2.ColorJitter(s, s)
        self.transform = v2.Compose([
            v2.RandomResizedCrop(size, scale=(low, high), antialias=True),
            *([v2.RandomHorizontalFlip()] if horizontal_flip else []),
            *([v2.RandomApply([jitter], p=0.8)] if s > 0 else []),
            *([v2.RandomGrayscale(p=0.2)] if channels == 3 else []),
        ])

    def forward(self, images: Tensor) -> Tensor:
        low, high = self.value_range
        unit = (images - low) / (high - low)
        # One call per image: a v2 transform draws one set of parameters per call, so a batched call
        # would give every image the same crop, flip and jitter.
        views = torch.stack([self.transform(image) for image in unit])
        return views.clamp(0.0, 1.0) * (high - low) + low
