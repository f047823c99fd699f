"""Lightning callbacks: image grids now; metric evaluation callbacks join them."""

from callbacks.images import ImageGridCallback, LatentTraversal, Reconstructions, SampleGrid

__all__ = ["ImageGridCallback", "LatentTraversal", "Reconstructions", "SampleGrid"]
