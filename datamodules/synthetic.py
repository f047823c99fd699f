"""A ground truth whose observations are the factor classes themselves, for checking metrics."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class FactorGroundTruth:
    """Independent uniform factors; ``images_for`` returns the factor classes as floats [n, F].

    With it a representation is any function of the factors, so metric scores have known
    answers (a code equal to the standardised factors is perfectly disentangled).

    Args:
        factor_sizes: Number of classes of each factor.

    Raises:
        ValueError: empty ``factor_sizes`` or a size below 1.
    """

    def __init__(self, factor_sizes: Sequence[int]) -> None:
        if not factor_sizes or min(factor_sizes) < 1:
            raise ValueError(f"factor_sizes must be positive integers, got {list(factor_sizes)}")
        self.factor_sizes = [int(size) for size in factor_sizes]
        self.num_factors = len(self.factor_sizes)
        self.factor_classes = [torch.arange(size) for size in self.factor_sizes]

    def sample_factors(self, n: int, generator: torch.Generator) -> Tensor:
        """Factor classes [n, F], each uniform over its classes, on the generator's device."""
        columns = [torch.randint(size, (n,), generator=generator, device=generator.device) for size in self.factor_sizes]
        return torch.stack(columns, dim=1)

    def images_for(self, factors: Tensor) -> Tensor:
        """The observations of factor classes [n, F]: the classes themselves as floats [n, F]."""
        return factors.float()

    def standardise(self, factors: Tensor) -> Tensor:
        """Factor classes mapped to zero mean and unit variance under the uniform distribution
        (a single-valued factor maps to 0)."""
        sizes = torch.tensor(self.factor_sizes, device=factors.device, dtype=torch.float32)
        mean, std = (sizes - 1) / 2, ((sizes.square() - 1) / 12).sqrt()
        return (factors.float() - mean) / std.clamp_min(1e-12)
