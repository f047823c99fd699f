"""Checkpoints name classes by module path (hyper-parameters hold ``OptimizerConfig`` and
``KLAnnealing`` objects, pickled as ``module.Class``): moving a module must not orphan the
checkpoints written before the move, and what a checkpoint names must exist."""

from __future__ import annotations

import importlib
import pickletools
import sys
import types
import zipfile
from pathlib import Path

import torch

from lightning_modules import BetaVAE, KLAnnealing, OptimizerConfig
from lightning_modules.training.checkpoints import read_checkpoint

#: Where these classes lived when checkpoints were first written (before lightning_modules/training/).
PATHS_BEFORE_THE_LAYOUT = {OptimizerConfig: "lightning_modules.optim", KLAnnealing: "lightning_modules.annealing"}


def pickled_globals(path: Path) -> set[str]:
    """``module.name`` of every global the checkpoint's pickle names."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(name for name in archive.namelist() if name.endswith("data.pkl")))
    found, strings = set(), []
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(argument)
        elif opcode.name == "GLOBAL":
            found.add(argument.replace(" ", "."))
        elif opcode.name == "STACK_GLOBAL":
            found.add(".".join(strings[-2:]))
    return found


def hyper_parameters() -> dict:
    model = BetaVAE(data_shape=(1, 28, 28), latent_dim=4, kl_annealing=KLAnnealing("linear", warmup_steps=10), optimizer=OptimizerConfig(lr=1e-3))
    return {"hyper_parameters": dict(model.hparams)}


def test_a_checkpoint_written_before_the_modules_moved_still_loads(tmp_path, monkeypatch):
    path = tmp_path / "old.ckpt"
    expected = hyper_parameters()
    with monkeypatch.context() as old_layout:  # pickle the classes as the old modules named them
        for cls, module in PATHS_BEFORE_THE_LAYOUT.items():
            old_layout.setitem(sys.modules, module, types.SimpleNamespace(**{cls.__name__: cls}))
            old_layout.setattr(cls, "__module__", module)
        torch.save(expected, path)
    assert {f"{module}.{cls.__name__}" for cls, module in PATHS_BEFORE_THE_LAYOUT.items()} <= pickled_globals(path)

    assert read_checkpoint(path) == expected


def test_a_new_checkpoint_names_only_classes_that_exist_where_it_says(tmp_path):
    path = tmp_path / "new.ckpt"
    torch.save(hyper_parameters(), path)
    ours = sorted(name for name in pickled_globals(path) if name.startswith("lightning_modules"))
    assert ours, "the hyper-parameters hold our config classes"
    for name in ours:
        module, _, attribute = name.rpartition(".")
        assert getattr(importlib.import_module(module), attribute).__module__ == module, name
    assert read_checkpoint(path) == hyper_parameters()

