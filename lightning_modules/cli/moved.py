"""Class paths that moved, still read in configs: a run's config.yaml written before issue 16's layout
(support files into ``lightning_modules``' sub-packages, one module per disentanglement score) names
e.g. ``lightning_modules.loggers.WandbLogger``; it runs as it is, each moved path read as the class it
named, with one notice naming the new path.

Read rather than refused: a move changes no class, so the old path names exactly what it named when
the run started, and a researcher resuming a run (``--config runs/x/config.yaml --ckpt_path last``)
continues it without editing the file; the config.yaml the run then saves records the new paths.
Arguments that were renamed are another matter: those are refused with the new name
(``lightning_modules.cli.RENAMED_ARGUMENTS``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any

from jsonargparse import Namespace
from pytorch_lightning.utilities import rank_zero_info

#: Every public class whose path changed (from git: the renames of issue 16's session, commit
#: 1044a11 against the layout after it), old path -> new path.
MOVED_CLASSES = {
    "lightning_modules.annealing.KLAnnealing": "lightning_modules.training.annealing.KLAnnealing",
    "lightning_modules.checkpoints.SafeCheckpointIO": "lightning_modules.training.checkpoints.SafeCheckpointIO",
    "lightning_modules.contrastive.ContrastiveHead": "lightning_modules.training.contrastive.ContrastiveHead",
    "lightning_modules.contrastive.SeparationWatch": "lightning_modules.training.contrastive.SeparationWatch",
    "lightning_modules.divergences.FDivergence": "lightning_modules.losses.divergences.FDivergence",
    "lightning_modules.loggers.GeneratorUpdateLogging": "lightning_modules.training.step_logging.GeneratorUpdateLogging",
    "lightning_modules.loggers.WandbLogger": "lightning_modules.cli.loggers.WandbLogger",
    "lightning_modules.optim.OptimizerConfig": "lightning_modules.training.optim.OptimizerConfig",
    "lightning_modules.pretrained_vae.PretrainedVAE": "lightning_modules.training.pretrained_vae.PretrainedVAE",
    "lightning_modules.report.Cell": "lightning_modules.cli.report.Cell",
    "lightning_modules.report.Run": "lightning_modules.cli.report.Run",
    "lightning_modules.strategies.GANDDPStrategy": "lightning_modules.training.strategies.GANDDPStrategy",
    "lightning_modules.warm_start.WarmStart": "lightning_modules.training.warm_start.WarmStart",
    "metrics.disentanglement.BetaVAEScore": "metrics.beta_vae.BetaVAEScore",
    "metrics.disentanglement.DCIScore": "metrics.dci.DCIScore",
    "metrics.disentanglement.FactorVAEScore": "metrics.factor_vae.FactorVAEScore",
    "metrics.disentanglement.MutualInformationGap": "metrics.mig.MutualInformationGap",
    "metrics.disentanglement.SAPScore": "metrics.sap.SAPScore",
}

_OLD_MODULES = {path.rpartition(".")[0] for path in MOVED_CLASSES}
_noticed: set[str] = set()


def moved_class(module: str, name: str) -> Any:
    """The class ``module.name`` named before it moved, with a notice the first time; AttributeError
    for a name that never moved from there (as for any missing attribute)."""
    old = f"{module}.{name}"
    if old not in MOVED_CLASSES:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new_module, _, new_name = MOVED_CLASSES[old].rpartition(".")
    if old not in _noticed:
        _noticed.add(old)
        rank_zero_info(f"{old} has moved to {MOVED_CLASSES[old]}: read as that (write the new path in your configs).")
    return getattr(importlib.import_module(new_module), new_name)


def with_current_paths(value: Any) -> Any:
    """``value`` (a config: Namespace, dicts, lists) with every moved ``class_path`` replaced by the
    new path, in place, so that a config a run prints or saves names classes where they are."""
    if isinstance(value, (Namespace, dict)):
        items = list(vars(value).items() if isinstance(value, Namespace) else value.items())
    else:
        items = list(enumerate(value)) if isinstance(value, list) else []
    for key, item in items:
        if key == "class_path" and item in MOVED_CLASSES:
            value[key] = MOVED_CLASSES[item]
        else:
            with_current_paths(item)
    return value


def _serve_moved_classes(module: ModuleType) -> None:
    """A module's missing attributes looked up among the classes that moved out of it (PEP 562)."""
    own = module.__dict__.get("__getattr__")

    def __getattr__(name: str) -> Any:
        try:
            return moved_class(module.__name__, name)
        except AttributeError:
            if own is None:
                raise
            return own(name)

    module.__getattr__ = __getattr__


class _OldModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on ``sys.meta_path``: an old module that no longer exists is an empty one serving the classes that moved out of it."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(fullname, self) if fullname in _OLD_MODULES else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module

    def exec_module(self, module: ModuleType) -> None:
        _serve_moved_classes(module)


def install() -> None:
    """Makes every old path of :data:`MOVED_CLASSES` import its class (idempotent): an old module that
    is gone is found last on the import path, empty; each serves the classes that moved out of it."""
    if any(isinstance(finder, _OldModules) for finder in sys.meta_path):
        return
    sys.meta_path.append(_OldModules())
    for name in sorted(_OLD_MODULES):
        module = importlib.import_module(name)
        if not isinstance(module.__spec__.loader, _OldModules):  # still there, without the classes that moved
            _serve_moved_classes(module)
