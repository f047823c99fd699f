"""The disentanglement literature's datasets on tiny files of their published formats: the published
factor orders and sizes, factor <-> index round trips, images read for the right factors, the
messages for missing and damaged files, and a metric callback run on each."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from callbacks import DisentanglementEvaluation
from datamodules import (
    Cars3DDataModule,
    ColorDSpritesDataModule,
    MPI3DDataModule,
    NoisyDSpritesDataModule,
    ScreamDSpritesDataModule,
    Shapes3DDataModule,
    SmallNORBDataModule,
)
from lightning_modules import BetaVAE
from tests.helpers import (
    CARS3D_OBJECTS,
    MPI3D_ROWS,
    SHAPES3D_CLASSES,
    SMALLNORB_CLASSES,
    TINY_DISENTANGLEMENT,
    grid_indices,
    quiet_trainer,
    read_index,
    write_cars3d,
    write_mpi3d,
    write_scream,
    write_shapes3d,
    write_smallnorb,
)

#: Published factor orders and sizes: Kim & Mnih 2018 / the 3dshapes README; Gondal et al. 2019
#: (MPI3D, 6 x 6 x 2 x 3 x 3 x 40 x 40 = 1,036,800 images); disentanglement_lib's norb.py and
#: cars3d.py; dSprites' README.
PUBLISHED = {
    "shapes3d": ([("floor_hue", 10), ("wall_hue", 10), ("object_hue", 10), ("scale", 8), ("shape", 4), ("orientation", 15)], 480_000),
    "mpi3d": ([("object_color", 6), ("object_shape", 6), ("object_size", 2), ("camera_height", 3), ("background_color", 3),
               ("horizontal_axis", 40), ("vertical_axis", 40)], 1_036_800),
    "smallnorb": ([("category", 5), ("elevation", 9), ("azimuth", 18), ("lighting", 6)], 48_600),  # 24,300 in each half
    "cars3d": ([("elevation", 4), ("azimuth", 24), ("object", 183)], 183 * 96),
    "dsprites": ([("shape", 3), ("scale", 6), ("orientation", 40), ("posX", 32), ("posY", 32)], 737_280),
}


def build(name: str, root, **kwargs):
    """The datamodule of ``name`` on its tiny files written under ``root``, images in [0, 1]."""
    settings = dict(value_range=(0.0, 1.0), batch_size=4, val_size=4, **kwargs)
    if name == "shapes3d":
        write_shapes3d(root)
        return Shapes3DDataModule(str(root), **settings)
    if name == "mpi3d":
        write_mpi3d(root)
        return MPI3DDataModule(str(root), **settings)
    if name == "smallnorb":
        write_smallnorb(root)
        return SmallNORBDataModule(str(root), **settings)
    if name == "cars3d":
        write_cars3d(root)
        return Cars3DDataModule(str(root), **settings)
    if name == "scream_dsprites":
        write_scream(root / "scream.jpg")
        return ScreamDSpritesDataModule(root=str(root), source="procedural", **settings)
    return {"color_dsprites": ColorDSpritesDataModule, "noisy_dsprites": NoisyDSpritesDataModule}[name](str(root), source="procedural", **settings)


FILE_DATASETS = ["shapes3d", "mpi3d", "smallnorb", "cars3d"]
DSPRITES_VARIANTS = ["color_dsprites", "noisy_dsprites", "scream_dsprites"]
#: What each tiny file holds: the classes of each factor (a product, so the metrics' recombined factors stay inside).
TINY_CLASSES = {
    "shapes3d": SHAPES3D_CLASSES,
    "mpi3d": [[0]] * 5 + [[0, 1], list(range(40))],
    "smallnorb": SMALLNORB_CLASSES,
    "cars3d": [list(range(4)), list(range(24)), list(range(CARS3D_OBJECTS))],
}


@pytest.mark.parametrize("name", FILE_DATASETS + DSPRITES_VARIANTS)
def test_the_loader_reads_the_published_factor_order_and_sizes(name, tmp_path):
    truth = build(name, tmp_path).ground_truth
    factors, images = PUBLISHED[name.rsplit("_", 1)[-1] if name.endswith("dsprites") else name]
    assert list(zip(truth.factor_names, truth.factor_sizes)) == factors
    assert truth.num_factors == len(factors)
    # one image per combination, except SmallNORB's ten instances
    assert math.prod(truth.factor_sizes) * (10 if name == "smallnorb" else 1) == images


@pytest.mark.parametrize("name", FILE_DATASETS)
def test_factor_index_round_trips_and_the_files_combinations_are_available(name, tmp_path):
    truth = build(name, tmp_path).ground_truth
    generator = torch.Generator().manual_seed(0)
    everywhere = torch.stack([torch.randint(size, (200,), generator=generator) for size in truth.factor_sizes], 1)
    assert torch.equal(truth.index_to_factors(truth.factors_to_index(everywhere)), everywhere)
    index = torch.randint(len(truth), (200,), generator=generator)
    assert torch.equal(truth.factors_to_index(truth.index_to_factors(index)), index)
    # the first factor is the most significant digit, the last the least
    last = torch.zeros(1, truth.num_factors, dtype=torch.long)
    last[0, -1] = 1
    assert truth.factors_to_index(last).item() == 1
    first = torch.zeros(1, truth.num_factors, dtype=torch.long)
    first[0, 0] = 1
    assert truth.factors_to_index(first).item() == math.prod(truth.factor_sizes[1:])
    expected = torch.from_numpy(grid_indices(truth.factor_sizes, TINY_CLASSES[name])[1])
    assert torch.equal(truth.available_indices, expected.sort().values)
    # the metrics' factors stay in the file's classes
    sampled = truth.sample_factors(500, generator)
    for column, classes in zip(sampled.T, TINY_CLASSES[name]):
        assert set(column.tolist()) == set(classes)
    with pytest.raises(ValueError, match="out of range"):
        truth.factors_to_index(torch.tensor([truth.factor_sizes]))


@pytest.mark.parametrize("name", ["shapes3d", "mpi3d", "cars3d"])
def test_images_for_reads_the_image_of_each_combination(name, tmp_path):
    """Each tiny image spells its grid index in its pixels: images_for must return exactly those."""
    datamodule = build(name, tmp_path)
    truth = datamodule.ground_truth
    factors = truth.sample_factors(64, torch.Generator().manual_seed(1))
    images = truth.images_for(factors)
    assert images.shape == (64, *datamodule.data_shape) == (64, 3, 64, 64) and images.dtype == torch.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert torch.equal(read_index(images), truth.factors_to_index(factors))
    # the batches the model trains on are the images of the factors that come with them
    datamodule.setup("fit")
    x, y = next(iter(datamodule.train_dataloader()))
    assert torch.equal(read_index(x), truth.factors_to_index(y))
    missing = torch.tensor([truth.factor_sizes]) - 1  # the last class of every factor: not in the tiny files
    with pytest.raises(ValueError, match="not in"):
        truth.images_for(missing)


def test_shapes3d_reads_lazily_unless_asked_and_both_agree(tmp_path):
    lazy = build("shapes3d", tmp_path).ground_truth
    in_memory = Shapes3DDataModule(str(tmp_path), value_range=(0.0, 1.0), in_memory=True).ground_truth
    assert lazy._memory is None and in_memory._memory is not None
    factors = lazy.sample_factors(32, torch.Generator().manual_seed(2))
    repeated = torch.cat([factors, factors.flip(0)])  # unsorted and repeated rows
    assert torch.equal(lazy.images_for(repeated), in_memory.images_for(repeated))


def test_mpi3d_extracts_the_compressed_npz_once_to_a_memory_mapped_npy(tmp_path):
    truth = build("mpi3d", tmp_path).ground_truth
    assert isinstance(truth._images, np.memmap) and (tmp_path / "mpi3d_toy.npy").is_file()
    assert len(truth.available_indices) == MPI3D_ROWS
    (tmp_path / "mpi3d_toy.npz").unlink()  # the extracted images are enough from then on
    again = MPI3DDataModule(str(tmp_path), value_range=(0.0, 1.0)).ground_truth
    assert torch.equal(again.images_for(truth.index_to_factors(torch.arange(8))), truth.images_for(truth.index_to_factors(torch.arange(8))))


def test_smallnorb_shows_one_of_the_instances_of_each_combination_reproducibly(tmp_path):
    levels = write_smallnorb(tmp_path / "norb")
    truth = SmallNORBDataModule(str(tmp_path / "norb"), value_range=(0.0, 1.0)).ground_truth
    factors = truth.sample_factors(256, torch.Generator().manual_seed(0))
    images = truth.images_for(factors)
    assert images.shape == (256, 1, 64, 64)
    grey = (images * 255).round().long()
    assert (grey == grey[:, :, :1, :1]).all()  # a constant 96 px image stays constant at 64 px
    seen = set()
    for index, level in zip(truth.factors_to_index(factors).tolist(), grey[:, 0, 0, 0].tolist()):
        assert level in levels[index]  # an image of this combination
        seen.add(level)
    assert len(seen) > len(levels)  # and not always the same instance: all four come up
    assert torch.equal(truth.images_for(factors), images)  # the same request, the same instances (no generator)
    drawn = [truth.images_for(factors, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(drawn[0], drawn[1]) and not torch.equal(drawn[0], drawn[2])


def test_dsprites_variants_follow_disentanglement_lib(tmp_path):
    """Color: the sprite in one colour in [0.5, 1]^3 on black. Noisy: a white sprite on noise.
    Scream: the sprite is the inverted background. All RGB, the same factors as dSprites,
    reproducible from a generator or (without one) from the request."""
    factors = torch.tensor([[0, 5, 0, 16, 16], [2, 5, 10, 8, 20], [1, 3, 30, 25, 4]])
    plain = ColorDSpritesDataModule(str(tmp_path), source="procedural").ground_truth.sprites_for(factors).bool()
    sprite, background = plain.expand(-1, 3, -1, -1), ~plain.expand(-1, 3, -1, -1)
    images = {name: build(name, tmp_path).ground_truth.images_for(factors) for name in DSPRITES_VARIANTS}
    for name, x in images.items():
        assert x.shape == (3, 3, 64, 64) and 0.0 <= x.min() and x.max() <= 1.0, name
    color = images["color_dsprites"]
    assert (color[background] == 0).all()
    colours = color.amax(dim=(2, 3))
    assert ((colours >= 0.5) & (colours <= 1.0)).all() and len(set(colours.flatten().tolist())) == 9
    assert torch.equal(color * sprite, colours[:, :, None, None] * sprite)  # one colour per image
    noisy = images["noisy_dsprites"]
    assert (noisy[sprite] == 1).all() and noisy[background].std() > 0.2  # uniform noise: std 0.29
    scream = build("scream_dsprites", tmp_path).ground_truth
    assert scream.scream.shape == (3, 274, 219)  # 500 x 400 shrunk to fit 350 x 274, as disentanglement_lib
    x = images["scream_dsprites"]
    assert (x[background] <= 1.0).all() and not torch.equal(x[0], x[1])
    for name in DSPRITES_VARIANTS:
        truth = build(name, tmp_path).ground_truth
        assert torch.equal(truth.images_for(factors), images[name])
        a, b, c = (truth.images_for(factors, torch.Generator().manual_seed(s)) for s in (3, 3, 4))
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert build(name, tmp_path).data_shape == (3, 64, 64)


def test_scream_inverts_the_background_at_the_sprite(tmp_path):
    """With the crop known: a one-grey painting makes every background pixel (grey + tint) / 2 and
    every sprite pixel 1 minus that."""
    from PIL import Image

    Image.fromarray(np.full((300, 400, 3), 100, dtype=np.uint8)).save(tmp_path / "scream.jpg")
    truth = ScreamDSpritesDataModule(root=str(tmp_path), source="procedural", value_range=(0.0, 1.0)).ground_truth
    factors = torch.tensor([[1, 5, 0, 16, 16]])
    x = truth.images_for(factors)
    mask = truth.sprites_for(factors).bool()[0, 0]
    background = x[0][:, ~mask]
    assert torch.allclose(background, background[:, :1].expand_as(background))
    assert torch.allclose(x[0][:, mask], 1 - background[:, :1].expand(-1, int(mask.sum())))


MISSING = {
    "shapes3d": (Shapes3DDataModule, ["3dshapes.h5"], "storage.googleapis.com/3d-shapes/3dshapes.h5"),
    "mpi3d": (MPI3DDataModule, ["mpi3d_toy.npz"], "disentanglement_dataset/Final_Dataset/mpi3d_toy.npz"),
    "smallnorb": (SmallNORBDataModule, [f"smallnorb-5x{ids}x9x18x6x2x96x96-{half}-{part}.mat" for ids, half in
                                        (("46789", "training"), ("01235", "testing")) for part in ("dat", "cat", "info")],
                  "cs.nyu.edu/~ylclab/data/norb-v1.0-small"),
    "cars3d": (Cars3DDataModule, ["car_001_mesh.mat", "car_199_mesh.mat"], "scottreed.info/files/nips2015-analogy-data.tar.gz"),
    "scream_dsprites": (ScreamDSpritesDataModule, ["scream.jpg"], "wikimedia.org"),
}


@pytest.mark.parametrize("name", list(MISSING))
def test_a_missing_dataset_names_every_file_where_it_is_published_and_where_to_put_it(name, tmp_path):
    datamodule_class, files, url = MISSING[name]
    datamodule = datamodule_class(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError) as error:
        datamodule.setup("fit")
    message = str(error.value)
    for file in files:
        assert str(tmp_path / "empty" / file) in message
    assert url in message
    assert datamodule.check_inputs("fit") == [message]  # the CLI's check before the run says the same


def damage(name: str, root) -> str:
    """Write the tiny files, then damage one; returns the damaged file's name."""
    if name == "smallnorb":
        write_smallnorb(root)
        path = root / "smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat"
        path.write_bytes(path.read_bytes()[:-100])  # truncated
    elif name == "cars3d":
        write_cars3d(root)
        path = root / "car_001_mesh.mat"
        path.write_bytes(b"not a MATLAB file")
    else:
        build(name, root)
        path = root / {"shapes3d": "3dshapes.h5", "mpi3d": "mpi3d_toy.npz", "scream_dsprites": "scream.jpg"}[name]
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # a download cut short
    return path.name


@pytest.mark.parametrize("name", list(MISSING))
def test_a_damaged_file_is_named_with_the_fix(name, tmp_path):
    file = damage(name, tmp_path)
    datamodule_class, _, url = MISSING[name]
    with pytest.raises(ValueError, match="damaged") as error:
        datamodule_class(str(tmp_path)).setup("fit")
    assert str(tmp_path / file) in str(error.value) and url in str(error.value)
    assert not (tmp_path / "mpi3d_toy.npy").exists()  # no half-extracted images left behind


@pytest.mark.parametrize("name", FILE_DATASETS + DSPRITES_VARIANTS)
def test_every_score_of_the_disentanglement_callback_on_each_dataset(name, tmp_path):
    datamodule = build(name, tmp_path)
    callback = DisentanglementEvaluation(sizes=TINY_DISENTANGLEMENT, every_n_steps=None, batch_size=64)
    trainer = quiet_trainer(max_steps=1, callbacks=[callback])
    trainer.fit(BetaVAE(latent_dim=4, width=4, data_shape=datamodule.data_shape, likelihood="bernoulli"), datamodule)
    assert len(callback.scores) == 7
    assert all(math.isfinite(value) and 0.0 <= value <= 1.0 for value in callback.scores.values())


def test_spawned_workers_get_the_file_datasets_without_their_images(tmp_path):
    """A DataLoader worker started by spawn unpickles the dataset: the h5py handle and the memory
    map are reopened there, not pickled (a pickled memory map is a copy of every image)."""
    import pickle

    for name in ("shapes3d", "mpi3d"):
        truth = build(name, tmp_path / name).ground_truth
        factors = truth.index_to_factors(truth.available_indices[:5])
        expected = truth.images_for(factors)
        pickled = pickle.dumps(truth)
        # about the grid -> row table alone: the tiny files' images (0.8 and 1 MB) are not in it
        assert len(pickled) < len(pickle.dumps(truth._rows)) + 100_000, name
        assert torch.equal(pickle.loads(pickled).images_for(factors), expected)


def test_an_mpi3d_file_of_another_size_is_refused(tmp_path):
    """disentanglement_lib's early MPI3D toy had 4 colours and 4 shapes (460,800 images): read in the
    published 6 x 6 layout it would label images with the wrong factors."""
    np.save(tmp_path / "mpi3d_toy.npy", np.zeros((100, 64, 64, 3), dtype=np.uint8))  # 2.5 rows of 40
    with pytest.raises(ValueError, match="100 images, the published grid has 1036800"):
        MPI3DDataModule(str(tmp_path)).setup("fit")


def test_a_3dshapes_file_with_a_repeated_combination_is_refused(tmp_path):
    import h5py

    write_shapes3d(tmp_path)
    with h5py.File(tmp_path / "3dshapes.h5", "r+") as file:
        file["labels"][1] = file["labels"][0]
    with pytest.raises(ValueError, match="damaged.*labels repeat 1 factor combinations"):
        Shapes3DDataModule(str(tmp_path)).setup("fit")


def test_the_readme_data_table_lists_every_datamodule():
    from pathlib import Path

    import datamodules

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("| datamodule | layout under `root` | `y` |"):]
    table = table[: table.index("\n\n")]
    not_datasets = ("BaseDataModule", "GroundTruthDataModule", "LabelsDataModule")  # bases; labels to generate for
    listed = [name for name in datamodules.__all__ if name.endswith("DataModule") and name not in not_datasets]
    assert [name for name in listed if f"`{name}`" not in table] == []
