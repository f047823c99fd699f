"""Every model the package defines is in the registry the resume, precision, DDP and subcommand
suites draw from (tests/models.py), and is exported."""

import importlib
import inspect
import pkgutil

import pytorch_lightning as pl

import lightning_modules
from tests.models import MODELS


def defined_models() -> set[type]:
    """The public LightningModules of the package's modules that train (their own training_step):
    the models, not the bases they share."""
    found = set()
    for module in pkgutil.walk_packages(lightning_modules.__path__, "lightning_modules."):
        if module.name.endswith("__main__"):  # the CLI's entry point runs on import
            continue
        for name, cls in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
            if (issubclass(cls, pl.LightningModule) and cls.__module__ == module.name and not name.startswith("_")
                    and cls.training_step is not pl.LightningModule.training_step):
                found.add(cls)
    return found


def test_every_model_is_exported_and_registered():
    models = defined_models()
    assert len(models) >= 15  # the walk found the model files
    exported = {getattr(lightning_modules, name) for name in lightning_modules.__all__}
    assert not models - exported, f"not in lightning_modules.__all__: {sorted(m.__name__ for m in models - exported)}"
    registered = {entry.model for entry in MODELS.values()}
    missing = sorted(m.__name__ for m in models - registered)
    assert not missing, f"add an entry for {missing} to tests/models.py: the resume, precision, DDP and subcommand suites run it"
