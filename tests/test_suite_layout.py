"""The suite's own layout: what tests share lives in helper modules (helpers, probes, cases,
conftest), never in a test module that another imports (pytest would then collect, and a
refactor of one suite would break another)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_test_modules(source: str, importer: str) -> set[str]:
    """The ``tests/test_*`` modules other than ``importer`` that ``source`` imports: at any depth
    (inside functions too), absolutely or relatively, or names in a string (a config's
    ``class_path``, ``importlib.import_module``)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = ("tests." if node.level else "") + (node.module or "")
            names += [module, *(f"{module.rstrip('.')}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.append(node.value)
    found = {match.group(1) for name in names if (match := re.match(r"tests\.(test_\w+)", name))}
    return found - {importer}


def test_no_test_module_imports_another():
    offenders = {
        path.name: sorted(imported)
        for path in sorted(TESTS.glob("test_*.py"))
        if (imported := imported_test_modules(path.read_text(), path.stem))
    }
    assert not offenders, (
        f"test modules import other test modules: {offenders}; move what they share to tests/helpers.py, "
        "tests/probes.py, tests/models.py or a conftest fixture"
    )


def test_every_way_of_importing_a_test_module_is_found():
    source = '''
from tests.test_ddp import run_cli
import tests.test_logging
from tests import test_bigan
from .test_resume import CASES

def later():
    from tests.test_cli import main

CONFIG = {"class_path": "tests.test_fid.TinyFeatures"}
from tests.helpers import quiet_trainer
from tests.test_self import Probe
'''
    assert imported_test_modules(source, "test_self") == {"test_ddp", "test_logging", "test_bigan", "test_resume", "test_cli", "test_fid"}
