"""Behaviour of the datamodules on tiny data written by the tests (CPU, a few seconds)."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from jsonargparse import ArgumentParser
from PIL import Image

from datamodules import (
    CelebADataModule,
    DSpritesDataModule,
    DSpritesGroundTruth,
    GaussianMixtureDataModule,
    LSUNBedroomsDataModule,
    MNISTDataModule,
)
from datamodules.celeba import CELEBA_ATTRIBUTES
from datamodules.dsprites import NPZ_NAME
from datamodules.loader import ResumableDataLoader
from tests.helpers import write_celeba, write_fake_npz, write_idx, write_mnist

REAL_MNIST = Path(__file__).resolve().parents[2] / "shared/data/MNIST/raw"
VALUE_RANGES = [(-1.0, 1.0), (0.0, 1.0)]


@pytest.fixture(scope="module")
def ground_truth() -> DSpritesGroundTruth:
    return DSpritesGroundTruth(value_range=(0.0, 1.0))


def factors(*rows: list[int]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


def area(images: torch.Tensor) -> torch.Tensor:
    """Pixel count of (0, 1) images [n, 1, H, W]."""
    return images.sum(dim=(1, 2, 3))


def centre_of_mass(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) centres of mass of (0, 1) images [n, 1, H, W]."""
    grid = torch.arange(images.shape[-1], dtype=torch.float32)
    mass = area(images)
    rows = (images.sum(dim=(1, 3)) * grid).sum(dim=1) / mass
    cols = (images.sum(dim=(1, 2)) * grid).sum(dim=1) / mass
    return rows, cols


# ---------------------------------------------------------------- dSprites: factor grid


def test_dsprites_grid_and_index_round_trip(ground_truth: DSpritesGroundTruth) -> None:
    assert len(ground_truth) == 737_280 == math.prod(ground_truth.factor_sizes)
    assert ground_truth.num_factors == 5
    assert ground_truth.factor_sizes == [3, 6, 40, 32, 32]
    assert len(ground_truth.factor_names) == 5
    random = torch.randint(737_280, (1000,), generator=torch.Generator().manual_seed(1))
    index = torch.cat([torch.tensor([0, 737_279]), random])
    assert torch.equal(ground_truth.factors_to_index(ground_truth.index_to_factors(index)), index)
    assert ground_truth.index_to_factors(torch.tensor([0, 737_279])).tolist() == [[0] * 5, [2, 5, 39, 31, 31]]
    # Mixed radix, shape most significant, posY least.
    assert ground_truth.factors_to_index(factors([1, 0, 0, 0, 1], [0, 1, 2, 3, 4])).tolist() == [
        6 * 40 * 32 * 32 + 1,
        40 * 32 * 32 + 2 * 32 * 32 + 3 * 32 + 4,
    ]
    with pytest.raises(ValueError, match="out of range"):
        ground_truth.factors_to_index(factors([3, 0, 0, 0, 0]))
    with pytest.raises(ValueError):
        ground_truth.index_to_factors(torch.tensor([737_280]))


def test_dsprites_sample_factors_uniform_and_reproducible(ground_truth: DSpritesGroundTruth) -> None:
    sample = ground_truth.sample_factors(5000, torch.Generator().manual_seed(3))
    assert sample.shape == (5000, 5) and sample.dtype == torch.long
    assert sample.min(dim=0).values.tolist() == [0] * 5
    assert sample.max(dim=0).values.tolist() == [s - 1 for s in ground_truth.factor_sizes]
    assert torch.equal(sample, ground_truth.sample_factors(5000, torch.Generator().manual_seed(3)))


# ---------------------------------------------------------------- dSprites: rendering


@pytest.mark.parametrize("value_range", VALUE_RANGES)
def test_dsprites_images_are_binary_in_value_range(value_range: tuple[float, float]) -> None:
    truth = DSpritesGroundTruth(value_range=value_range)
    images = truth.images_for(truth.sample_factors(256, torch.Generator().manual_seed(0)))
    assert images.shape == (256, 1, 64, 64) and images.dtype == torch.float32
    assert images.unique().tolist() == list(value_range)


def test_dsprites_largest_shapes_stay_inside_frame(ground_truth: DSpritesGroundTruth) -> None:
    corners = [(x, y) for x in (0, 31) for y in (0, 31)]
    grid = factors(*[[s, 5, o, x, y] for s in range(3) for o in range(0, 40, 3) for x, y in corners])
    images = ground_truth.images_for(grid)[:, 0]
    border = torch.cat([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], dim=1)
    assert border.sum() == 0
    assert (area(images[:, None]) > 0).all()


def test_dsprites_area_grows_strictly_with_scale(ground_truth: DSpritesGroundTruth) -> None:
    for shape in range(3):
        areas = area(ground_truth.images_for(factors(*[[shape, scale, 7, 16, 16] for scale in range(6)])))
        assert (areas[1:] > areas[:-1]).all(), (shape, areas)


def test_dsprites_position_moves_right_and_down(ground_truth: DSpritesGroundTruth) -> None:
    for shape in range(3):
        along_x = factors(*[[shape, 3, 0, x, 10] for x in (0, 10, 20, 31)])
        rows, cols = centre_of_mass(ground_truth.images_for(along_x))
        assert (cols[1:] > cols[:-1]).all() and (rows - rows[0]).abs().max() < 0.5
        along_y = factors(*[[shape, 3, 0, 10, y] for y in (0, 10, 20, 31)])
        rows, cols = centre_of_mass(ground_truth.images_for(along_y))
        assert (rows[1:] > rows[:-1]).all() and (cols - cols[0]).abs().max() < 0.5


def test_dsprites_orientation_turns_square_but_keeps_area(ground_truth: DSpritesGroundTruth) -> None:
    images = ground_truth.images_for(factors(*[[0, 5, o, 16, 16] for o in (0, 5, 9)]))
    assert not torch.equal(images[0], images[1]) and not torch.equal(images[0], images[2])
    areas = area(images)
    assert ((areas - areas[0]).abs() / areas[0]).max() < 0.08


def test_dsprites_shapes_differ(ground_truth: DSpritesGroundTruth) -> None:
    images = ground_truth.images_for(factors(*[[s, 4, 3, 16, 16] for s in range(3)]))
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert (images[a] != images[b]).sum() > 20


# ---------------------------------------------------------------- dSprites: datamodule


def test_dsprites_datamodule_batches_and_loaders() -> None:
    dm = DSpritesDataModule(source="procedural", val_size=100, batch_size=32, value_range=(0.0, 1.0))
    assert dm.data_shape == (1, 64, 64) and dm.value_range == (0.0, 1.0)
    assert len(dm.ground_truth) == 737_280  # available before setup
    with pytest.raises(RuntimeError, match="setup"):
        dm.train_dataloader()
    dm.setup("fit")
    train, val = dm.train_dataloader(), dm.val_dataloader()
    assert isinstance(train, ResumableDataLoader) and train.sampler.shuffle and train.drop_last
    assert not val.sampler.shuffle and not val.drop_last
    assert not train.persistent_workers and train.pin_memory == torch.cuda.is_available()
    x, y = next(iter(train))
    assert x.shape == (32, 1, 64, 64) and x.dtype == torch.float32
    assert y.shape == (32, 5) and y.dtype == torch.long
    assert torch.equal(x, dm.ground_truth.images_for(y))
    assert len(val) == 4 and len(dm.test_dataloader().dataset) == 100


@pytest.mark.parametrize("value_range", VALUE_RANGES)
def test_dsprites_32_px_averages_each_2x2_block_of_the_64_px_sprite(value_range: tuple[float, float]) -> None:
    """The quick start's size: the batches, and the ground truth the metrics encode, are 32 px."""
    dm = DSpritesDataModule(source="procedural", val_size=100, batch_size=16, value_range=value_range, image_size=32)
    assert dm.data_shape == (1, 32, 32)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 32, 32)
    full = DSpritesGroundTruth(value_range=(0.0, 1.0)).images_for(y)
    low, high = value_range
    assert torch.allclose(x, low + (high - low) * torch.nn.functional.avg_pool2d(full, 2))
    assert torch.equal(dm.ground_truth.images_for(y), x)
    with pytest.raises(ValueError, match="image_size must be 64 or 32.*got 28"):
        DSpritesGroundTruth(image_size=28)


def test_dsprites_train_order_follows_the_run_seed_and_changes_every_epoch() -> None:
    dm = DSpritesDataModule(source="procedural", val_size=100, batch_size=8)
    dm.setup()

    def first_labels(seed: int, epoch: int = 0) -> torch.Tensor:
        pl.seed_everything(seed)
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        torch.manual_seed(seed + 1)  # the model's random stream does not move the data order
        return next(iter(loader))[1]

    assert torch.equal(first_labels(5), first_labels(5))
    assert not torch.equal(first_labels(5), first_labels(6))
    assert not torch.equal(first_labels(5), first_labels(5, epoch=1))


def test_dsprites_splits_deterministic_and_disjoint() -> None:
    def split(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        dm = DSpritesDataModule(source="procedural", val_size=1000, seed=seed)
        dm.setup()
        return dm.train_set.indices, dm.val_set.indices

    train, val = split(0)
    train_again, val_again = split(0)
    assert torch.equal(train, train_again) and torch.equal(val, val_again)
    assert len(val) == 1000 and len(train) == 737_280 - 1000
    assert not torch.isin(val, train).any()
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(737_280))
    assert not torch.equal(val, split(1)[1])


def test_dsprites_workers_render_in_subprocesses() -> None:
    dm = DSpritesDataModule(source="procedural", val_size=100, batch_size=16, num_workers=1)
    dm.setup()
    loader = dm.val_dataloader()
    assert loader.persistent_workers
    x, y = next(iter(loader))
    assert torch.equal(x, dm.ground_truth.images_for(y))


def test_dsprites_npz_source(tmp_path: Path) -> None:
    classes = np.array([[s, sc, 3, 4, 5] for s in range(3) for sc in range(6)], dtype=np.int64)
    images = write_fake_npz(tmp_path / NPZ_NAME, classes)
    for source in ("npz", "auto"):
        dm = DSpritesDataModule(root=str(tmp_path), source=source, val_size=4, batch_size=6)
        truth = dm.ground_truth
        expected = torch.from_numpy(images[[5, 0]]).float()[:, None] * 2 - 1
        assert torch.equal(truth.images_for(torch.from_numpy(classes[[5, 0]])), expected)
        in_file = truth.factors_to_index(torch.from_numpy(classes))
        assert torch.equal(truth.available_indices.sort().values, in_file.sort().values)
        dm.setup()
        assert len(dm.train_set) == 14 and len(dm.val_set) == 4
        x, y = next(iter(dm.train_dataloader()))
        rows = [classes.tolist().index(f) for f in y.tolist()]
        assert torch.equal(x, torch.from_numpy(images[rows]).float()[:, None] * 2 - 1)
    with pytest.raises(ValueError, match="not in the npz"):
        truth.images_for(factors([0, 0, 0, 0, 0]))


def test_dsprites_missing_npz(tmp_path: Path) -> None:
    dm = DSpritesDataModule(root=str(tmp_path), source="npz")
    with pytest.raises(FileNotFoundError, match=NPZ_NAME) as error:
        dm.setup()
    message = str(error.value)
    assert "github.com/google-deepmind/dsprites-dataset" in message and str(tmp_path) in message
    auto = DSpritesDataModule(root=str(tmp_path), source="auto")
    assert len(auto.ground_truth.available_indices) == 737_280


# ---------------------------------------------------------------- MNIST


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reads_idx_exactly(tmp_path: Path, compress: bool) -> None:
    images, labels = write_mnist(tmp_path, "train", 60, compress)
    test_images, test_labels = write_mnist(tmp_path, "t10k", 30, not compress)
    dm = MNISTDataModule(root=str(tmp_path), val_size=10, batch_size=16, value_range=(0.0, 1.0))
    assert dm.data_shape == (1, 28, 28)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (50, 10, 30)
    seen = []
    for dataset, (source_images, source_labels) in [
        (dm.train_set, (images, labels)),
        (dm.val_set, (images, labels)),
        (dm.test_set, (test_images, test_labels)),
    ]:
        x, y = dataset.__getitems__(list(range(len(dataset))))
        assert x.dtype == torch.float32 and y.dtype == torch.long
        pixels = (x[:, 0] * 255).round().to(torch.uint8).numpy()
        ids = pixels[:, 0, 0]
        np.testing.assert_array_equal(pixels, source_images[ids])
        np.testing.assert_array_equal(y.numpy(), source_labels[ids])
        seen.append(set(ids.tolist()))
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(60))


def test_mnist_pads_to_32_and_trains_on_t10k(tmp_path: Path) -> None:
    images, _ = write_mnist(tmp_path, "t10k", 20, compress=True)
    dm = MNISTDataModule(root=str(tmp_path), image_size=32, train_split="t10k", val_size=4, batch_size=8)
    assert dm.data_shape == (1, 32, 32)
    dm.setup("fit")
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 32, 32)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (x[:, 0, border] == -1.0).all()
    ids = ((x[:, 0, 2, 2] + 1) / 2 * 255).round().long()
    inner = ((x[:, 0, 2:30, 2:30] + 1) / 2 * 255).round().to(torch.uint8)
    assert torch.equal(inner, torch.from_numpy(images[ids.numpy()]))


def test_mnist_corrupt_files(tmp_path: Path) -> None:
    write_mnist(tmp_path, "train", 20, compress=False)
    images_path = tmp_path / "train-images-idx3-ubyte"
    images_path.write_bytes(images_path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*truncated"):
        MNISTDataModule(root=str(tmp_path), val_size=2).setup("fit")

    write_mnist(tmp_path, "t10k", 20, compress=True)
    gz_path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    gz_path.write_bytes(gz_path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz"):
        MNISTDataModule(root=str(tmp_path)).setup("test")

    write_mnist(tmp_path, "t10k", 20, compress=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros((20, 2), dtype=np.uint8), compress=True)
    with pytest.raises(ValueError, match="magic number"):
        MNISTDataModule(root=str(tmp_path)).setup("test")


def test_mnist_missing_files(tmp_path: Path) -> None:
    dm = MNISTDataModule(root=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as error:
        dm.setup("fit")
    message = str(error.value)
    assert "train-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message
    assert str(tmp_path / "nowhere") in message and "yann.lecun.com" in message


def test_mnist_missing_train_files_with_t10k_present_suggests_train_split(tmp_path: Path) -> None:
    write_mnist(tmp_path, "t10k", 20, compress=True)
    with pytest.raises(FileNotFoundError) as error:
        MNISTDataModule(root=str(tmp_path), val_size=2).setup("fit")
    message = str(error.value)
    assert "train-images-idx3-ubyte" in message and "train_split: t10k" in message
    assert "--data.init_args.train_split=t10k" in message
    # without the t10k files the hint would mislead: it is not given
    with pytest.raises(FileNotFoundError) as error:
        MNISTDataModule(root=str(tmp_path / "nowhere"), val_size=2).setup("fit")
    assert "train_split" not in str(error.value)


@pytest.mark.skipif(not (REAL_MNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason="no real MNIST t10k")
def test_mnist_real_t10k() -> None:
    dm = MNISTDataModule(root=str(REAL_MNIST), train_split="t10k", batch_size=100)
    dm.setup("test")
    x, y = dm.test_set.__getitems__(list(range(len(dm.test_set))))
    assert x.shape == (10_000, 1, 28, 28)
    assert x.min() == -1.0 and x.max() == 1.0
    assert set(y.unique().tolist()) == set(range(10))


# ---------------------------------------------------------------- CelebA


@pytest.mark.parametrize("value_range", VALUE_RANGES)
def test_celeba_partition_attributes_and_images(tmp_path: Path, value_range: tuple[float, float]) -> None:
    _, attributes, partition = write_celeba(tmp_path)
    dm = CelebADataModule(
        root=str(tmp_path), image_size=16, crop_size=32, batch_size=2, value_range=value_range
    )
    assert dm.data_shape == (3, 16, 16)
    assert dm.attribute_names == list(CELEBA_ATTRIBUTES) and len(dm.attribute_names) == 40
    dm.setup()
    low, high = value_range
    for split, code in [("train", 0), ("val", 1), ("test", 2)]:
        members = [i for i, p in enumerate(partition) if p == code]
        dataset = getattr(dm, f"{split}_set")
        x, y = dataset.__getitems__(list(range(len(dataset))))
        assert x.shape == (len(members), 3, 16, 16) and x.dtype == torch.float32
        assert torch.equal(y, torch.from_numpy((attributes[members] > 0).astype(np.int64)))
        grey = (x.mean(dim=(1, 2, 3)) - low) / (high - low) * 255
        assert torch.allclose(grey, torch.tensor([40.0 * (i + 1) for i in members]), atol=3)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 3, 16, 16) and y.shape == (2, 40) and y.dtype == torch.long
    assert x.min() >= low and x.max() <= high and set(y.unique().tolist()) <= {0, 1}


def test_celeba_missing(tmp_path: Path) -> None:
    (tmp_path / "img_align_celeba").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        CelebADataModule(root=str(tmp_path)).setup()
    message = str(error.value)
    for item in ("img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt", "mmlab.ie.cuhk.edu.hk"):
        assert item in message, item


# ---------------------------------------------------------------- LSUN


def write_lsun(root: Path) -> None:
    """Images of several sizes and formats in nested folders, plus a file to ignore."""
    stripes = np.zeros((32, 64, 3), dtype=np.uint8)  # green | red | blue | green, 16 columns each
    stripes[:, :16, 1] = stripes[:, 48:, 1] = 255
    stripes[:, 16:32, 0] = 255
    stripes[:, 32:48, 2] = 255
    (root / "a" / "b").mkdir(parents=True)
    Image.fromarray(stripes).save(root / "a" / "stripes.png")
    others = [((40, 30), "jpg"), ((30, 50), "webp"), ((24, 24), "jpeg"), ((50, 40), "png")]
    for i, (size, suffix) in enumerate(others):
        Image.new("RGB", size, (50 * i, 100, 200)).save(root / "a" / "b" / f"{i}.{suffix}")
    (root / "notes.txt").write_text("not an image")


def test_lsun_folder(tmp_path: Path) -> None:
    write_lsun(tmp_path)
    dm = LSUNBedroomsDataModule(
        root=str(tmp_path), image_size=16, val_size=2, batch_size=3, value_range=(0.0, 1.0)
    )
    assert dm.data_shape == (3, 16, 16)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set)) == (3, 2)
    assert set(dm.train_set.paths).isdisjoint(dm.val_set.paths)
    assert len(set(dm.train_set.paths) | set(dm.val_set.paths)) == 5
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (3, 3, 16, 16) and x.min() >= 0.0 and x.max() <= 1.0
    assert torch.equal(y, torch.zeros(3, dtype=torch.long))

    again = LSUNBedroomsDataModule(root=str(tmp_path), image_size=16, val_size=2, seed=0)
    again.setup()
    assert again.val_set.paths == dm.val_set.paths

    # Shorter side resized to 16 (32x16), then the centre 16 columns: red | blue, no green.
    path = str(tmp_path / "a" / "stripes.png")
    dataset = dm.train_set if path in dm.train_set.paths else dm.val_set
    stripes, _ = dataset.__getitems__([dataset.paths.index(path)])
    assert stripes[0, 1].max() < 0.2  # only antialiasing blur of green survives the crop
    assert (stripes[0, 0, :, 1:7] > 0.95).all() and (stripes[0, 2, :, 9:15] > 0.95).all()


def test_lsun_missing_or_empty(tmp_path: Path) -> None:
    for root in (tmp_path / "absent", tmp_path):
        with pytest.raises(FileNotFoundError) as error:
            LSUNBedroomsDataModule(root=str(root)).setup()
        assert str(root) in str(error.value) and "github.com/fyu/lsun" in str(error.value)


# ---------------------------------------------------------------- Gaussian mixture


def test_gaussian_ring_samples_near_centres() -> None:
    dm = GaussianMixtureDataModule(num_components=8, radius=2.0, std=0.02, num_samples=4000, batch_size=256)
    assert dm.data_shape == (2,) and dm.value_range is None
    assert torch.allclose(dm.centers.norm(dim=1), torch.full((8,), 2.0))
    dm.setup()
    x, y = dm.train_set.x, dm.train_set.y
    assert x.shape == (4000, 2) and y.dtype == torch.long and set(y.unique().tolist()) == set(range(8))
    assert (x - dm.centers[y]).norm(dim=1).max() < 6 * 0.02
    assert abs(x.norm(dim=1).mean().item() - 2.0) < 0.01
    batch_x, batch_y = next(iter(dm.train_dataloader()))
    assert batch_x.shape == (256, 2) and batch_x.dtype == torch.float32 and batch_y.shape == (256,)


def test_gaussian_deterministic_per_seed() -> None:
    def points(seed: int) -> torch.Tensor:
        dm = GaussianMixtureDataModule(num_samples=500, seed=seed)
        dm.setup()
        return dm.train_set.x

    assert torch.equal(points(3), points(3))
    assert not torch.equal(points(3), points(4))


def test_gaussian_grid() -> None:
    dm = GaussianMixtureDataModule(layout="grid", num_components=9, radius=1.5)
    ticks = (-1.5, 0.0, 1.5)
    assert sorted(map(tuple, dm.centers.tolist())) == [(a, b) for a in ticks for b in ticks]
    with pytest.raises(ValueError, match="perfect-square"):
        GaussianMixtureDataModule(layout="grid", num_components=8)


# ---------------------------------------------------------------- shared arguments


@pytest.mark.parametrize(
    "datamodule", [DSpritesDataModule, MNISTDataModule, CelebADataModule, LSUNBedroomsDataModule]
)
def test_value_range_validated(datamodule: type) -> None:
    with pytest.raises(ValueError, match=r"\(0, 2\)"):
        datamodule(value_range=(0, 2))
    assert datamodule(value_range=[0, 1]).value_range == (0.0, 1.0)


def test_arguments_rejected_at_parse_time() -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(DSpritesDataModule, "data")
    parser.add_class_arguments(MNISTDataModule, "mnist")
    parsed = parser.parse_args(["--data.batch_size=8", "--mnist.image_size=32"])
    assert parsed.data.batch_size == 8 and parsed.mnist.image_size == 32
    for bad in ("--data.batch_size=0", "--data.num_workers=-1", "--data.source=zip", "--mnist.image_size=30"):
        with pytest.raises(Exception):
            parser.parse_args([bad])


def test_num_workers_capped_at_the_cpus_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """A config's num_workers is a ceiling: on a machine with fewer cores the loader uses them all,
    without torch's "suggested max number of worker" warning."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    dm = DSpritesDataModule(source="procedural", val_size=100, batch_size=16, num_workers=4)
    dm.setup()
    loader = dm.val_dataloader()
    assert loader.num_workers == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, y = next(iter(loader))
    assert torch.equal(x, dm.ground_truth.images_for(y))
    assert DSpritesDataModule(source="procedural", num_workers=0).num_workers == 0


# ------------------------------------------------------------- what identifies a dataset
def test_every_datamodule_states_the_settings_that_choose_its_data() -> None:
    """``dataset_fingerprint`` (e.g. FID's cache key) knows a datamodule's data only by what its
    ``data_settings`` state: every constructor argument that chooses the data (its own or a base
    class's) must be there, or two datasets would share keys. Left out: how the data is loaded
    (batch size, workers, 3D Shapes' ``in_memory``, dSprites' ``render_on_device``: the same images
    rendered after the transfer), what the fingerprint holds itself (seed, value
    range), and the mixture's layout arguments, which it states as the centres they place."""
    import inspect

    import datamodules

    not_data = {"self", "kwargs", "batch_size", "num_workers", "seed", "value_range", "in_memory", "render_on_device"}
    stated_as_centres = {"layout", "num_components", "radius"}
    classes = [getattr(datamodules, name) for name in datamodules.__all__]
    image_modules = [
        c for c in classes
        if isinstance(c, type) and issubclass(c, datamodules.BaseDataModule) and not inspect.isabstract(c)
        and c not in (datamodules.BaseDataModule, datamodules.GroundTruthDataModule)
    ]
    assert {MNISTDataModule, DSpritesDataModule, CelebADataModule, LSUNBedroomsDataModule, GaussianMixtureDataModule} <= set(image_modules)
    for cls in image_modules:
        arguments = {
            name
            for base in cls.__mro__ if "__init__" in vars(base) and issubclass(base, datamodules.BaseDataModule)
            for name in inspect.signature(base.__init__).parameters
        } - not_data
        stated = set(cls().data_settings())
        if "centers" in stated:
            stated |= stated_as_centres
        assert arguments <= stated, f"{cls.__name__}.data_settings() leaves out {sorted(arguments - stated)}"


def test_the_same_data_has_the_same_fingerprint_and_other_data_another(tmp_path: Path) -> None:
    write_mnist(tmp_path / "mnist", "train", 20, compress=False)

    def fingerprint(split: str = "train", root: Path = tmp_path / "mnist", **settings) -> dict:
        return MNISTDataModule(root=str(root), val_size=5, **settings).dataset_fingerprint(split)

    same = fingerprint()
    assert fingerprint(batch_size=3, num_workers=1) == same  # how it is loaded is not what it is
    assert same["size"] == 15 and same["split"] == "train" and same["settings"]["image_size"] == 28
    # the same files elsewhere are the same data (a folder by its files, not its path)
    os.makedirs(tmp_path / "copy")
    for name in os.listdir(tmp_path / "mnist"):
        source, target = tmp_path / "mnist" / name, tmp_path / "copy" / name
        target.write_bytes(source.read_bytes())
        os.utime(target, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns))
    assert fingerprint(root=tmp_path / "copy") == same
    others = [fingerprint("val"), fingerprint(image_size=32), fingerprint(seed=1)]
    assert all(other != same for other in others)
    assert MNISTDataModule(root=str(tmp_path / "mnist"), val_size=6).dataset_fingerprint("train")["size"] == 14
    (tmp_path / "mnist" / "train-images-idx3-ubyte").touch()  # rewritten files: other data
    assert fingerprint() != same


def test_a_datamodule_that_states_no_settings_is_a_clear_error() -> None:
    from datamodules import BaseDataModule

    class Unstated(BaseDataModule):
        data_shape = (1, 4, 4)

    with pytest.raises(NotImplementedError, match=r"Unstated does not state its data_settings\(\)"):
        Unstated().dataset_fingerprint("train")


def test_dsprites_fixed_factors_keep_one_class_in_the_batches_the_draws_and_the_scores(tmp_path: Path) -> None:
    """The quick start's upright sprites: `fixed_factors={"orientation": 0}` leaves only orientation
    class 0 in the batches, in the metrics' factor draws and in the grid, the scores leave the
    now constant factor out, and the fixed class is part of what the data is (its fingerprint)."""
    from metrics.mig import MutualInformationGap

    dm = DSpritesDataModule(source="procedural", val_size=100, batch_size=64, image_size=32, fixed_factors={"orientation": 0})
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert (y[:, 2] == 0).all() and len(y[:, 0].unique()) == 3 and len(y[:, 3].unique()) > 10
    assert len(dm.train_set) + len(dm.val_set) == 3 * 6 * 32 * 32
    truth = dm.ground_truth
    assert torch.equal(truth.images_for(y), x)
    drawn = truth.sample_factors(500, torch.Generator().manual_seed(0))
    assert (drawn[:, 2] == 0).all() and len(drawn[:, 4].unique()) == 32
    assert MutualInformationGap(truth, num_train=10).varying.tolist() == [0, 1, 3, 4]
    turned = DSpritesGroundTruth(value_range=(0.0, 1.0), fixed_factors={"orientation": 10, "shape": 2})
    assert (turned.index_to_factors(turned.available_indices)[:, [0, 2]] == torch.tensor([2, 10])).all()
    write_fake_npz(tmp_path / NPZ_NAME, factors([0, 0, 0, 1, 2], [1, 0, 0, 1, 2], [0, 3, 5, 4, 4]))  # a file: filtered the same way
    from_file = DSpritesDataModule(root=str(tmp_path), source="npz", fixed_factors={"shape": 0}).ground_truth
    assert from_file.index_to_factors(from_file.available_indices).tolist() == [[0, 0, 0, 1, 2], [0, 3, 5, 4, 4]]
    upright = DSpritesDataModule(source="procedural", fixed_factors={"orientation": 0}).data_settings()
    assert upright != DSpritesDataModule(source="procedural").data_settings()
    with pytest.raises(ValueError, match="unknown dSprites factor 'rotation'.*orientation"):
        DSpritesDataModule(fixed_factors={"rotation": 0})
    with pytest.raises(ValueError, match=r"fixed_factors\['orientation'\] = 40 is not a class of orientation: use 0 to 39"):
        DSpritesDataModule(fixed_factors={"orientation": 40})
