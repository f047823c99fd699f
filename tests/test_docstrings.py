"""Every public class and function of the models, networks, losses, training plumbing, metrics,
callbacks and datamodules has a docstring, as ``help()`` shows it: its own, or for a method that
overrides one (a Lightning hook, a base class's contract) the one it overrides."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import callbacks
import datamodules
import lightning_modules
import metrics

PACKAGES = (lightning_modules, metrics, callbacks, datamodules)


def modules():
    for package in PACKAGES:
        yield package
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not info.name.startswith("lightning_modules.cli") and info.name != "lightning_modules.__main__":
                yield importlib.import_module(info.name)


def public_callables():
    for module in modules():
        for name, value in vars(module).items():
            if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(value):
                yield f"{module.__name__}.{name}", value
                fields = getattr(value, "__dataclass_fields__", {})  # documented in the class's Args
                for attribute, member in vars(value).items():
                    if not attribute.startswith("_") and attribute not in fields and (inspect.isfunction(member) or isinstance(member, property)):
                        yield f"{module.__name__}.{name}.{attribute}", getattr(value, attribute) if inspect.isfunction(member) else member
            elif inspect.isfunction(value):
                yield f"{module.__name__}.{name}", value


def documented(path: str, value) -> bool:
    if isinstance(value, property):
        return bool(value.__doc__)
    if inspect.getdoc(value):
        return True
    owner, _, name = path.rpartition(".")  # a method: the docstring of the method it overrides
    cls = next((v for p, v in public_callables_index().items() if p == owner), None)
    return cls is not None and any(inspect.getdoc(getattr(base, name, None)) for base in cls.__mro__[1:] if name in vars(base))


_INDEX: dict = {}


def public_callables_index() -> dict:
    if not _INDEX:
        _INDEX.update((path, value) for path, value in public_callables() if inspect.isclass(value))
    return _INDEX


def test_every_public_callable_has_a_docstring():
    missing = sorted({path for path, value in public_callables() if not documented(path, value)})
    assert not missing, f"{len(missing)} public callables without a docstring: {missing}"
