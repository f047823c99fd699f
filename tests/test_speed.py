"""The speed switches (README "Speed on a GPU"): no host synchronisation inside a training step, and
compiled training that ends on eager training's weights.

A GPU runs ahead of the host only while nothing in the step reads a device value on the host: every
``.item()``, ``.tolist()``, ``.cpu()``, ``bool(tensor)`` (``if tensor:``), ``float(tensor)``, ...
waits for all the work queued so far. On this CPU such a read costs nothing, so the tests count
the calls themselves (on a GPU, ``torch.cuda.set_sync_debug_mode`` checks the same)."""

from __future__ import annotations

import dataclasses
import itertools
import pickle
import re
import traceback
from contextlib import contextmanager

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from datamodules import DSpritesDataModule
from datamodules.dsprites import NPZ_NAME
from lightning_modules import OptimizerConfig
from tests.helpers import RandomImages, flat_parameters, quiet_trainer, write_fake_npz
from tests.models import MODELS
from tests.probes import POISONED_BATCH, PoisonedRegression

#: The Tensor methods that bring a value to the host.
HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__", "__format__")


class HostReads(pl.Callback):
    """Records every host read of a tensor, and every Python value made a tensor on a device (a
    copy from the host, which on a GPU waits as a read does), with where it came from, from the
    start of batch ``first`` to the end of training, except those that read host memory on a GPU too: torch's optimizers
    keep their step counters on the host (``state["step"]``, unless capturable or fused), the
    DataLoader's sampler draws its indices there, and torchvision's v2 transforms draw their random
    parameters there (``torch.rand(1)``, ``torch.empty(1).uniform_()``: host tensors whatever the
    image's device; their kernels, ``transforms/v2/functional``, are not exempt)."""

    def __init__(self, first: int = 1) -> None:
        self.first, self.reads, self._counting = first, [], False

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._counting = self._counting or batch_idx >= self.first

    def on_train_end(self, trainer, module):  # before the module's own on_train_end (Lightning's order)
        self._counting = False

    @contextmanager
    def patched(self, trainer: pl.Trainer):
        originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}

        def counted(name):
            def read(tensor, *args, **kwargs):
                if self._counting and not self._on_host_anyway(tensor, trainer):
                    self.reads.append(f"{name}: " + " <- ".join(
                        f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno}" for frame in reversed(traceback.extract_stack()[-6:-1])
                    ))
                return originals[name](tensor, *args, **kwargs)
            return read

        tensor = torch.tensor

        def copied(data, *args, **kwargs):  # a Python value made a tensor on a device: a copy from the host, which waits
            device = kwargs.get("device")  # "cpu" spelled out: a tensor kept on the host on purpose (optimizers' counters)
            if self._counting and device is not None and device != "cpu" and not isinstance(data, torch.Tensor):
                self.reads.append("torch.tensor(..., device=...): " + " <- ".join(
                    f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno}" for frame in reversed(traceback.extract_stack()[-6:-1])
                ))
            return tensor(data, *args, **kwargs)

        for name in HOST_READS:
            setattr(torch.Tensor, name, counted(name))
        torch.tensor = copied
        try:
            yield self
        finally:
            for name, method in originals.items():
                setattr(torch.Tensor, name, method)
            torch.tensor = tensor

    @staticmethod
    def _on_host_anyway(tensor: torch.Tensor, trainer: pl.Trainer) -> bool:
        counters = (state.get("step") for optimizer in trainer.optimizers for state in optimizer.state.values())
        if any(tensor is counter for counter in counters):
            return True
        stack = traceback.extract_stack()[:-2]
        caller = stack[-1].filename  # the frame that read the tensor
        if "torchvision/transforms/v2/" in caller and "transforms/v2/functional/" not in caller:
            return True
        return any("torch/utils/data/" in frame.filename for frame in stack)


@pytest.mark.parametrize("name", MODELS)
def test_a_training_step_reads_nothing_on_the_host_with_nonfinite_sync_at_logging_steps(name, tmp_path):
    entry = MODELS[name]
    model = entry.model(**entry.arguments(tmp_path), nonfinite_sync="logging_steps")
    reads = HostReads()
    trainer = quiet_trainer(max_steps=3, log_every_n_steps=50, callbacks=[reads])
    with reads.patched(trainer):
        trainer.fit(model, entry.data())
    assert trainer.global_step == 3
    assert reads.reads == []


def test_every_update_reads_its_nonfinite_flags_once_and_logged_rows_read_the_logged_values():
    """The documented costs of the default: one read per update; the logged row's values."""
    model = PoisonedRegression(poison=1.0)
    reads = HostReads()
    trainer = quiet_trainer(max_steps=5, log_every_n_steps=4, callbacks=[reads])
    with reads.patched(trainer):
        trainer.fit(model, RandomImages(n=64))
    per_update = [read for read in reads.reads if read.startswith("tolist: base.py")]
    assert len(per_update) == 4  # batches 1-4: the generator's update each


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch.cuda.set_sync_debug_mode needs a GPU")
@pytest.mark.parametrize("name", ["dcgan-ema", "beta-vae", "idgan-sc", "infogan-cr"])
def test_on_a_gpu_a_training_step_synchronises_nothing(name, tmp_path):
    class SyncsAreErrors(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            torch.cuda.set_sync_debug_mode("error" if batch_idx >= 1 else "default")

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            torch.cuda.set_sync_debug_mode("default")  # Lightning's loop between batches is not ours

    entry = MODELS[name]
    model = entry.model(**entry.arguments(tmp_path), nonfinite_sync="logging_steps")
    trainer = quiet_trainer(accelerator="gpu", max_steps=3, log_every_n_steps=50, callbacks=[SyncsAreErrors()])
    try:
        trainer.fit(model, entry.data())
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert trainer.global_step == 3


class WeightsPerBatch(pl.Callback):
    def __init__(self):
        self.weights = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.weights.append(flat_parameters(module).clone())


@pytest.mark.parametrize("fused", [False, True], ids=["restored", "fused"])
def test_at_logging_steps_a_skipped_update_leaves_the_weights_and_is_reported_at_the_next_logged_row(fused):
    """Undone from a copy, or skipped by a fused optimizer itself (found_inf)."""
    model = PoisonedRegression(nonfinite_loss="skip", nonfinite_sync="logging_steps")
    model.optimized_networks["generator"] = dataclasses.replace(model.optimized_networks["generator"], fused=fused)
    record = WeightsPerBatch()
    trainer = quiet_trainer(max_steps=6, log_every_n_steps=4, callbacks=[record])
    with pytest.warns(UserWarning, match=rf"non-finite loss \(nan\) at step {POISONED_BATCH} in the update of generator: skipped") as warned:
        trainer.fit(model, RandomImages(n=64))
    assert trainer.global_step == 6 and model.nonfinite_updates == 1  # a skipped update counts as a step here
    weights = record.weights + [flat_parameters(model)]
    assert [i for i in range(len(weights) - 1) if torch.equal(weights[i], weights[i + 1])] == [POISONED_BATCH]
    assert torch.isfinite(weights[-1]).all()
    assert len([w for w in warned if "non-finite" in str(w.message)]) == 1


def test_at_logging_steps_stop_keeps_the_last_good_state_until_the_logged_row_and_saves_it(tmp_path):
    model = PoisonedRegression(poisoned="gradient", nonfinite_loss="stop", nonfinite_sync="logging_steps")
    record = WeightsPerBatch()
    trainer = quiet_trainer(max_steps=10, log_every_n_steps=4, callbacks=[record, ModelCheckpoint(dirpath=tmp_path)],
                            enable_checkpointing=True)
    with pytest.warns(UserWarning, match=f"stopped at step 4 after a non-finite gradient of generator at step {POISONED_BATCH}"):
        trainer.fit(model, RandomImages(n=64))
    assert trainer.global_step == 4
    checkpoint = torch.load(tmp_path / "nonfinite-step=4.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 4
    saved = torch.cat([checkpoint["state_dict"][k].reshape(-1) for k in model.state_dict()])
    assert torch.equal(saved, record.weights[POISONED_BATCH])  # every update from the bad one on was skipped
    state = checkpoint["optimizer_states"][0]["state"][0]
    assert torch.isfinite(state["exp_avg"]).all() and float(state["step"]) == POISONED_BATCH  # Adam's too
    assert re.search("nonfinite", " ".join(str(p) for p in tmp_path.iterdir()))


def trained_weights(name: str, directory, steps: int = 3, **switches) -> torch.Tensor:
    """A registry model's weights (every network's, the EMA's too) after ``steps`` generator steps from seed 0."""
    entry = MODELS[name]
    pl.seed_everything(0, verbose=False)
    model = entry.model(**entry.arguments(directory), **switches)
    quiet_trainer(max_steps=steps).fit(model, entry.data())
    return torch.cat([t.detach().reshape(-1).float() for t in model.state_dict().values()])


@pytest.mark.parametrize("name", ["dcgan-ema", "idgan-sc"])
def test_compiled_training_ends_on_the_weights_of_eager_training(name, tmp_path):
    """Dynamo's graphs of every network, forward and backward (AOTAutograd), with the optimize()
    blocks' toggling (a guard on requires_grad: D compiles once trainable, once frozen). The
    "aot_eager" backend runs those graphs without inductor's code generation, which takes over a
    minute per network on this CPU: the inductor case is the slow test below."""
    eager = trained_weights(name, tmp_path)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = trained_weights(name, tmp_path, compile="default", compile_backend="aot_eager")
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2  # the networks ran as graphs
    assert torch.allclose(compiled, eager, rtol=1e-5, atol=1e-6)
    assert not torch.equal(eager, trained_weights(name, tmp_path, steps=2))  # the steps moved the weights


@pytest.mark.slow
def test_inductor_compiled_training_ends_on_the_weights_of_eager_training(tmp_path):
    eager = trained_weights("dcgan-ema", tmp_path)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = trained_weights("dcgan-ema", tmp_path, compile="default")
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2
    assert torch.allclose(compiled, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("switches", [
    {"channels_last": True},
    {"generator_optimizer": OptimizerConfig(fused=True), "discriminator_optimizer": OptimizerConfig(fused=True)},
    {"nonfinite_sync": "logging_steps"},
], ids=["channels_last", "fused", "nonfinite_sync"])
def test_each_speed_switch_ends_on_the_weights_of_the_default_training(switches, tmp_path):
    default = trained_weights("dcgan-ema", tmp_path)
    assert torch.allclose(trained_weights("dcgan-ema", tmp_path, **switches), default, rtol=1e-5, atol=1e-6)


def dsprites_batches(device: str, steps: int = 3, **settings) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first training batches of a dSprites datamodule, as the trainer hands them to the model on ``device``."""
    datamodule = DSpritesDataModule(image_size=32, batch_size=16, **settings)
    datamodule.setup("fit")
    pl.seed_everything(0, verbose=False)
    loader = datamodule.train_dataloader()
    return [datamodule.transfer_batch_to_device(batch, torch.device(device), 0) for batch in itertools.islice(loader, steps)]


@pytest.fixture
def dsprites_npz(tmp_path):
    """A dSprites npz of 54 random images: 3 shapes x 6 scales x 3 orientations."""
    classes = np.array([[s, sc, o, 4, 5] for s in range(3) for sc in range(6) for o in range(3)], dtype=np.int64)
    write_fake_npz(tmp_path / NPZ_NAME, classes)
    return tmp_path


def test_dsprites_rendered_on_the_device_are_the_same_training_batches_in_the_same_order(dsprites_npz):
    """Procedural sprites rendered after the transfer, and the npz's images looked up there: the
    batches the host would have built."""
    for source in ({"source": "procedural"}, {"source": "npz", "root": str(dsprites_npz), "val_size": 6}):
        on_host, on_device = dsprites_batches("cpu", **source), dsprites_batches("cpu", render_on_device=True, **source)
        for (x, y), (x_device, y_device) in zip(on_host, on_device, strict=True):
            assert torch.equal(x, x_device) and torch.equal(y, y_device)
        assert x.shape == (16, 1, 32, 32) and x.min() == -1 and x.max() == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="holds the npz in a GPU's memory")
def test_the_npz_is_held_in_gpu_memory_once_and_gives_the_hosts_batches(dsprites_npz):
    datamodule = DSpritesDataModule(source="npz", root=str(dsprites_npz), val_size=6, image_size=32, batch_size=16,
                                    render_on_device=True)
    datamodule.setup("fit")
    pl.seed_everything(0, verbose=False)
    batches = [datamodule.transfer_batch_to_device(batch, torch.device("cuda"), 0) for batch in itertools.islice(datamodule.train_dataloader(), 3)]
    images, _ = datamodule.ground_truth._held
    assert images.device.type == "cuda" and datamodule.ground_truth._images.device.type == "cpu"  # a copy; workers keep the host's
    for (x, y), (x_host, y_host) in zip(batches, dsprites_batches("cpu", source="npz", root=str(dsprites_npz), val_size=6), strict=True):
        assert x.device.type == "cuda" and torch.equal(x.cpu(), x_host) and torch.equal(y.cpu(), y_host)
    assert pickle.loads(pickle.dumps(datamodule.ground_truth))._held is None


def test_a_run_resumed_with_fused_optimizers_steps_them_fused(tmp_path):
    """The switch takes effect on resume (the optimizer states restored from the checkpoint carry
    the implementation they were written with)."""
    entry = MODELS["dcgan-ema"]
    trainer = quiet_trainer(max_steps=2)
    trainer.fit(entry.build(tmp_path), entry.data())
    trainer.save_checkpoint(tmp_path / "eager.ckpt")
    fused = OptimizerConfig(fused=True)
    model = entry.model(**entry.arguments(tmp_path), generator_optimizer=fused, discriminator_optimizer=fused)
    resumed = quiet_trainer(max_steps=4)
    resumed.fit(model, entry.data(), ckpt_path=tmp_path / "eager.ckpt")
    assert resumed.global_step == 4
    assert all(group["fused"] for optimizer in resumed.optimizers for group in optimizer.param_groups)
    assert all(float(state["step"]) == 4 for state in resumed.optimizers[1].state.values())  # the generator's
