"""dSprites: the official npz when present, otherwise a procedural renderer of the same factor grid."""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jsonargparse.typing import PositiveInt
from torch import Tensor

from PIL import Image
from torchvision.transforms.v2.functional import pil_to_tensor

from .base import BatchedDataset, missing_dataset_error, unit_to_range
from .ground_truth import (
    GridGroundTruth,
    GroundTruthDataModule,
    GroundTruthDataset,
    RowTable,
    damaged_dataset_error,
)

NPZ_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
DSPRITES_URL = "https://github.com/google-deepmind/dsprites-dataset"
IMAGE_SIZE = 64
FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
# Shape is categorical (0 square, 1 ellipse, 2 heart); class k of each other factor stands for
# linspace(low, high, size)[k] with these (low, high).
_VALUE_SPANS = ((0.5, 1.0), (0.0, 2.0 * math.pi), (0.0, 1.0), (0.0, 1.0))
# Index = mixed radix of the classes, shape most significant, posY least.
_STRIDES = tuple(math.prod(FACTOR_SIZES[i + 1 :]) for i in range(len(FACTOR_SIZES)))
GRID_SIZE = math.prod(FACTOR_SIZES)

# Renderer geometry, in pixels. Shape centres span [0.2, 0.8] of the frame, like the official
# images. At scale 1 every shape fits in a circle of radius 12 around its centre (the square's
# side is then 17 px), inside the 12.8 px margin, so no shape is clipped at any rotation.
_CENTRE_LOW, _CENTRE_HIGH = 0.2 * IMAGE_SIZE, 0.8 * IMAGE_SIZE
_RADIUS = 12.0
# Side of the window around the centre that contains every pixel a shape can cover.
_WINDOW = 2 * math.ceil(_RADIUS) + 2


def _square(u: Tensor, v: Tensor) -> Tensor:
    return torch.maximum(u.abs(), v.abs()) <= math.sqrt(0.5)


def _ellipse(u: Tensor, v: Tensor) -> Tensor:
    """Semi-axes 1 (horizontal at orientation 0) and 1/2."""
    return u.square() + (2.0 * v).square() <= 1.0


def _heart(u: Tensor, v: Tensor) -> Tensor:
    """(x² + y² - 1)³ <= x² y³, lobes up and tip down; its smallest enclosing circle has
    radius 1.25 around (0, 0.25), hence the shift and scale that give it circumradius 1 like
    the other shapes."""
    x, y = 1.25 * u, 1.25 * v + 0.25
    q = x.square() + y.square() - 1.0
    return q * q * q <= x.square() * y * y * y


# Point-in-shape tests in units of the circumradius, v pointing up; indexed by the shape class.
_SHAPE_TESTS = (_square, _ellipse, _heart)


def _check_factors(factors: Tensor) -> Tensor:
    """Factor classes as a long tensor [n, 5]; their range is checked where they are on the host (on
    a GPU the check would wait for all queued work: there they come from the training loader, whose
    indices are checked on the host, ``GridGroundTruth.index_to_factors``)."""
    factors = torch.as_tensor(factors, dtype=torch.long)
    if factors.ndim != 2 or factors.shape[1] != len(FACTOR_SIZES):
        raise ValueError(f"factors must have shape [n, {len(FACTOR_SIZES)}], got {list(factors.shape)}")
    if factors.device.type == "cpu" and ((factors < 0) | (factors >= torch.tensor(FACTOR_SIZES))).any():
        raise ValueError(
            f"factor classes out of range; sizes are {list(FACTOR_SIZES)} ({', '.join(FACTOR_NAMES)})"
        )
    return factors


def _check_fixed_factors(fixed_factors: Mapping[str, int]) -> dict[int, int]:
    """{factor index: kept class} from {factor name: kept class}.

    Raises:
        ValueError: an unknown factor name, or a class outside the factor's range.
    """
    checked = {}
    for name, kept in fixed_factors.items():
        if name not in FACTOR_NAMES:
            raise ValueError(f"fixed_factors names an unknown dSprites factor {name!r}; the factors are {list(FACTOR_NAMES)}")
        size = FACTOR_SIZES[FACTOR_NAMES.index(name)]
        if not 0 <= int(kept) < size:
            raise ValueError(f"fixed_factors[{name!r}] = {kept} is not a class of {name}: use 0 to {size - 1}")
        checked[FACTOR_NAMES.index(name)] = int(kept)
    return checked


def render_dsprites(factors: Tensor) -> Tensor:
    """Boolean images [n, 64, 64] of factor classes [n, 5], computed on the factors' device.

    posX moves the shape right (increasing column) and posY down (increasing row), as in the
    official dataset; orientation turns it counter-clockwise as displayed. Pixels are tested at
    their centres. Only a window around each centre is tested and then pasted into the frame:
    about 6x fewer pixels than testing the full frame.
    """
    factors = _check_factors(factors)
    n, device = len(factors), factors.device
    scale, theta, pos_x, pos_y = (
        low + (high - low) * column / (size - 1)
        for (low, high), size, column in zip(_VALUE_SPANS, FACTOR_SIZES[1:], factors[:, 1:].T.float())
    )
    centre_x = _CENTRE_LOW + (_CENTRE_HIGH - _CENTRE_LOW) * pos_x
    centre_y = _CENTRE_LOW + (_CENTRE_HIGH - _CENTRE_LOW) * pos_y
    offsets = torch.arange(_WINDOW, device=device)
    cols = (centre_x.floor().long() - _WINDOW // 2).clamp(0, IMAGE_SIZE - _WINDOW)[:, None] + offsets
    rows = (centre_y.floor().long() - _WINDOW // 2).clamp(0, IMAGE_SIZE - _WINDOW)[:, None] + offsets
    radius = (_RADIUS * scale)[:, None]
    dx = ((cols + 0.5 - centre_x[:, None]) / radius)[:, None, :]
    dy = ((centre_y[:, None] - rows - 0.5) / radius)[:, :, None]  # up is positive
    cos, sin = theta.cos()[:, None, None], theta.sin()[:, None, None]
    # Rotating the pixel grid by -theta turns the shape by +theta.
    u, v = cos * dx + sin * dy, cos * dy - sin * dx
    # each shape's test on every window, kept where it is the image's shape: no data-dependent
    # sizes (a selection of the members would wait for the GPU to count them)
    window = torch.zeros(n, _WINDOW, _WINDOW, dtype=torch.bool, device=device)
    for shape, inside in enumerate(_SHAPE_TESTS):
        window |= (factors[:, 0] == shape)[:, None, None] & inside(u, v)
    frame = torch.zeros(n, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.bool, device=device)
    frame[torch.arange(n, device=device)[:, None, None], rows[:, :, None], cols[:, None, :]] = window
    return frame


_NPZ_ARRAYS = ("imgs", "latents_classes")


def _load_npz(path: Path) -> tuple[Tensor, Tensor]:
    """(imgs uint8 [N, 64, 64], factor classes [N, 5]) from a file with the official keys."""
    if not path.is_file():
        raise missing_dataset_error(path.parent, [path.name], f"dSprites is published at {DSPRITES_URL}")
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in _NPZ_ARRAYS if key in data.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as error:
        raise ValueError(
            f"{path} is not a readable npz (truncated or corrupt: {error}); download it again from "
            f"{DSPRITES_URL}, or set source: procedural"
        ) from error
    missing = [key for key in _NPZ_ARRAYS if key not in arrays]
    if missing:
        raise ValueError(f"{path} lacks the arrays {missing}")
    images, classes = arrays["imgs"], arrays["latents_classes"]
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or classes.shape != (len(images), 1 + len(FACTOR_SIZES)):
        raise ValueError(
            f"{path}: expected imgs [N, 64, 64] and latents_classes [N, 6], "
            f"got {list(images.shape)} and {list(classes.shape)}"
        )
    # latents_classes column 0 is colour, which has a single value (white) in dSprites.
    factors = torch.from_numpy(classes[:, 1:].astype(np.int64))
    return torch.from_numpy(images.astype(np.uint8, copy=False)), factors


class DSpritesGroundTruth(GridGroundTruth):
    """The dSprites factor grid and its images: the interface disentanglement metrics use.

    Images are rendered, or read from the official npz when `npz_path` is given. The npz may
    hold any subset of the grid, mapped through its `latents_classes` (the official file holds
    all of it), so tests can use a tiny file; `available_indices` lists the grid indices it has.

    Args:
        value_range: pixel values of the images (background, sprite).
        npz_path: the official npz, or None to render procedurally.
        image_size: 64 (the official images) or 32: each 2x2 block of the 64 px image averaged,
            so edges are grey as an anti-aliased rendering would be.
        seed: seed of the variants' colours, noise and crops when `images_for` gets no generator.
        fixed_factors: factor name -> the one class kept, e.g. ``{"orientation": 0}``: upright
            sprites only. `available_indices` then holds only the images with that class, so
            `sample_factors` draws only it and the metrics leave the factor out (one class).

    Raises:
        ValueError: an ``image_size`` other than 64 or 32; an unknown factor or class in ``fixed_factors``.
    """

    def __init__(
        self,
        value_range: Sequence[float] = (-1.0, 1.0),
        npz_path: str | Path | None = None,
        image_size: Literal[32, 64] = IMAGE_SIZE,
        seed: int = 0,
        fixed_factors: Mapping[str, int] | None = None,
    ) -> None:
        if image_size not in (32, IMAGE_SIZE):
            raise ValueError(f"dSprites image_size must be 64 or 32 (64 averaged over 2x2 blocks), got {image_size}")
        fixed = _check_fixed_factors(fixed_factors or {})
        self.image_size = image_size
        self._images: Tensor | None = None
        self._held: tuple[Tensor, RowTable] | None = None  # keep_images_on's copy
        if npz_path is None:
            indices = torch.arange(GRID_SIZE)
        else:
            self._images, factors = _load_npz(Path(npz_path))
            indices = (factors * torch.tensor(_STRIDES)).sum(1)
            self._rows = RowTable(GRID_SIZE, indices, f"the npz {npz_path}")
        for factor, kept in fixed.items():
            indices = indices[indices // _STRIDES[factor] % FACTOR_SIZES[factor] == kept]
        whole_grid = npz_path is None and not fixed  # None below: all of it, without sorting 737,280 indices
        super().__init__(FACTOR_NAMES, FACTOR_SIZES, value_range, None if whole_grid else indices, seed)

    def sprites_for(self, factors: Tensor) -> Tensor:
        """The sprites [n, 1, 64, 64] of factor classes [n, 5]: 1 inside the shape, 0 outside."""
        if self._images is None:
            masks = render_dsprites(factors)
        else:
            on_device = self._held is not None and self._held[0].device == factors.device
            images, rows = self._held if on_device else (self._images, self._rows)
            masks = (images[rows(self.factors_to_index(factors))] != 0).to(factors.device)
        return masks.unsqueeze(1).float()

    def keep_images_on(self, device: torch.device) -> None:
        """From now on hold a copy of the npz's images and row table in ``device``'s memory (the
        official file: 737,280 images of 64x64 bytes, 3.0 GB, copied once): images of factors on
        that device are looked up there, with no copy per batch and no wait for the device. Nothing
        to hold on the host, nor for procedural sprites, which are rendered where the factors are."""
        if self._images is not None and device.type != "cpu" and (self._held is None or self._held[0].device != device):
            self._held = self._images.to(device), self._rows.to(device)

    def __getstate__(self) -> dict:
        # a loader worker (spawned, or pickled) gets the host's images, never the device's copy
        return {**self.__dict__, "_held": None}

    def images_for(self, factors: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Images [n, C, image_size, image_size] in `value_range`, on the factors' device."""
        images = self.colour(self.sprites_for(factors), factors, generator)
        if self.image_size != IMAGE_SIZE:
            images = torch.nn.functional.avg_pool2d(images, IMAGE_SIZE // self.image_size)
        return unit_to_range(images, self.value_range)

    def colour(self, sprites: Tensor, factors: Tensor, generator: torch.Generator | None) -> Tensor:
        """Images in [0, 1] from the sprites: dSprites shows them as they are, white on black."""
        return sprites


class ColorDSpritesGroundTruth(DSpritesGroundTruth):
    """Color dSprites (Locatello et al. 2019, disentanglement_lib's ``ColorDSprites``): each image's
    sprite in its own colour, uniform in [0.5, 1] per RGB channel, on black."""

    def colour(self, sprites, factors, generator):
        generator = self.nuisance_generator(factors, generator)
        colours = torch.rand(len(sprites), 3, 1, 1, generator=generator, device=generator.device)
        return sprites * (0.5 + 0.5 * colours.to(sprites.device))


class NoisyDSpritesGroundTruth(DSpritesGroundTruth):
    """Noisy dSprites (disentanglement_lib's ``NoisyDSprites``): a white sprite on uniform noise,
    drawn per pixel and channel."""

    def colour(self, sprites, factors, generator):
        generator = self.nuisance_generator(factors, generator)
        noise = torch.rand(len(sprites), 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator, device=generator.device)
        return torch.clamp(sprites + noise.to(sprites.device), max=1.0)


SCREAM_NAME = "scream.jpg"
SCREAM_URL = "https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg"
# disentanglement_lib shrinks the painting to fit 350 x 274 (PIL's thumbnail) before cropping.
_SCREAM_THUMBNAIL = (350, 274)


def load_scream(path: Path) -> Tensor:
    """The painting as disentanglement_lib uses it: RGB in [0, 1], [3, H, W], shrunk to fit 350 x 274.

    Raises:
        FileNotFoundError: the dataset's files are not there (the message lists them and where to get them).
        ValueError: a file that is there but unreadable or of another shape (named, with the published file to replace it by).
    """
    if not path.is_file():
        raise missing_dataset_error(
            path.parent, [path.name], f"Scream dSprites crops Munch's The Scream, published at {SCREAM_URL}; save it as {path}"
        )
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail(_SCREAM_THUMBNAIL)
            scream = pil_to_tensor(image)
    except (OSError, SyntaxError) as error:
        raise damaged_dataset_error(path, str(error), SCREAM_URL) from error
    if min(scream.shape[1:]) <= IMAGE_SIZE:
        raise damaged_dataset_error(path, f"{scream.shape[2]}x{scream.shape[1]} px after the thumbnail, not more than 64 px a side", SCREAM_URL)
    return scream.float() / 255.0


class ScreamDSpritesGroundTruth(DSpritesGroundTruth):
    """Scream dSprites (disentanglement_lib's ``ScreamDSprites``): the background is a random 64x64
    crop of The Scream averaged with a random colour (uniform per channel), and the sprite's pixels
    are that background inverted (1 - x).

    Args:
        scream_path: the painting (``scream.jpg``).
    """

    def __init__(self, value_range=(-1.0, 1.0), npz_path=None, image_size=IMAGE_SIZE, seed=0, fixed_factors=None, *,
                 scream_path: str | Path) -> None:
        super().__init__(value_range, npz_path, image_size, seed, fixed_factors)
        self.scream = load_scream(Path(scream_path))

    def colour(self, sprites, factors, generator):
        generator = self.nuisance_generator(factors, generator)
        n, (height, width) = len(sprites), self.scream.shape[1:]
        top = torch.randint(height - IMAGE_SIZE, (n,), generator=generator, device=generator.device).cpu()
        left = torch.randint(width - IMAGE_SIZE, (n,), generator=generator, device=generator.device).cpu()
        tint = torch.rand(n, 3, 1, 1, generator=generator, device=generator.device).cpu()
        offsets = torch.arange(IMAGE_SIZE)
        rows, cols = (top[:, None] + offsets)[:, None, :, None], (left[:, None] + offsets)[:, None, None, :]
        crops = self.scream[torch.arange(3)[None, :, None, None], rows, cols]
        background = ((crops + tint) / 2).to(sprites.device)
        return torch.where(sprites > 0, 1 - background, background)


class DSpritesDataModule(GroundTruthDataModule):
    """dSprites (Matthey et al., 2017): 64x64 binary sprites over 5 known factors.

    There is no official test split: the test loader reuses the validation hold-out.

    Args:
        root: directory searched for the official dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz.
        source: "npz" requires that file, "procedural" renders the grid, "auto" uses the file when present.
        val_size: number of images held out for validation, chosen by seed; the rest is training data.
        image_size: 64 (the official images) or 32 (each 2x2 block averaged: 4x cheaper nets).
        render_on_device: The training loader yields factor classes only, made into images on
            the training device after the transfer (the same images, in the same order): procedural
            sprites are rendered there; the npz's images are held in the device's memory (3.0 GB,
            copied at the first batch) and looked up there. No images built by the host, copied
            per batch, or held in a worker. Off by default: on a CPU it is the same work.
        fixed_factors: factor name -> the one class kept in training, validation and the metrics'
            ground truth, e.g. ``{orientation: 0}``: upright sprites, whose shapes stay readable at
            32 px (the quick start). The metrics then score the other factors.
    """

    channels = 1

    def __init__(
        self,
        root: str = "data/dsprites",
        source: Literal["auto", "npz", "procedural"] = "auto",
        val_size: PositiveInt = 10000,
        image_size: Literal[32, 64] = IMAGE_SIZE,
        render_on_device: bool = False,
        fixed_factors: dict[str, int] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(root, val_size, **kwargs)
        _check_fixed_factors(fixed_factors or {})  # a bad name or class fails here, not at first use
        self.fixed_factors = dict(fixed_factors or {})
        self.source = source
        self.image_size = image_size
        self.render_on_device = render_on_device
        self.data_shape = (self.channels, image_size, image_size)

    def _loader(self, dataset, *, train: bool):
        if train and self.render_on_device:
            dataset = FactorClasses(dataset)
        return super()._loader(dataset, train=train)

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        batch = super().transfer_batch_to_device(batch, device, dataloader_idx)
        if isinstance(batch, Tensor):  # factor classes from render_on_device's loader
            self.ground_truth.keep_images_on(batch.device)
            return self.ground_truth.images_for(batch), batch
        return batch

    def _npz_path(self) -> Path | None:
        """The npz to read, or None to render: only the npz source reads a file (and fails when it is missing)."""
        npz_path = self.root / NPZ_NAME
        if self.source == "procedural" or (self.source == "auto" and not npz_path.is_file()):
            return None
        return npz_path

    def data_settings(self) -> dict:
        # the folder only where it may be read: procedural sprites are the same whatever is there
        root = None if self.source == "procedural" else self.root
        return {"root": root, "source": self.source, "image_size": self.image_size, "val_size": self.val_size,
                "fixed_factors": self.fixed_factors}

    @cached_property
    def ground_truth(self) -> DSpritesGroundTruth:
        """Built on first use."""
        return DSpritesGroundTruth(self.value_range, self._npz_path(), self.image_size, self.seed, self.fixed_factors)


class FactorClasses(BatchedDataset):
    """A ground-truth dataset's factor classes [B, F] without its images (``render_on_device``)."""

    def __init__(self, dataset: GroundTruthDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, indices: Sequence[int]) -> Tensor:
        return self.dataset.ground_truth.index_to_factors(self.dataset.indices[torch.as_tensor(indices, dtype=torch.long)])

    def __getitem__(self, index: int) -> Tensor:
        return self.__getitems__([index])[0]


class ColorDSpritesDataModule(DSpritesDataModule):
    """Color dSprites (Locatello et al. 2019): dSprites with each sprite in a random colour, RGB.

    The same files and options as `DSpritesDataModule`; colours are drawn per image (see
    `ColorDSpritesGroundTruth`), from ``seed`` for the metrics' observations.
    """

    channels = 3

    @cached_property
    def ground_truth(self) -> ColorDSpritesGroundTruth:
        return ColorDSpritesGroundTruth(self.value_range, self._npz_path(), self.image_size, self.seed, self.fixed_factors)


class NoisyDSpritesDataModule(DSpritesDataModule):
    """Noisy dSprites (Locatello et al. 2019): white sprites on uniform noise, RGB; as `ColorDSpritesDataModule`."""

    channels = 3

    @cached_property
    def ground_truth(self) -> NoisyDSpritesGroundTruth:
        return NoisyDSpritesGroundTruth(self.value_range, self._npz_path(), self.image_size, self.seed, self.fixed_factors)


class ScreamDSpritesDataModule(DSpritesDataModule):
    """Scream dSprites (Locatello et al. 2019): sprites inverted on crops of The Scream, RGB.

    Args:
        scream_path: Munch's The Scream (``scream.jpg``, from Wikimedia Commons); by default
            ``<root>/scream.jpg``.
    """

    channels = 3

    def __init__(self, root: str = "data/dsprites", scream_path: str | None = None, **kwargs) -> None:
        super().__init__(root, **kwargs)
        self.scream_path = Path(scream_path) if scream_path else self.root / SCREAM_NAME

    def data_settings(self) -> dict:
        return {**super().data_settings(), "scream_path": self.scream_path}

    @cached_property
    def ground_truth(self) -> ScreamDSpritesGroundTruth:
        return ScreamDSpritesGroundTruth(
            self.value_range, self._npz_path(), self.image_size, self.seed, self.fixed_factors, scream_path=self.scream_path
        )
