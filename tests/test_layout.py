"""The map of the repository holds: the import rules of README.md's "Layout" section (import-linter
contracts in pyproject.toml) are kept, a broken one fails, and the section names every file there is."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lightning_modules", "callbacks", "datamodules", "metrics")
#: The sub-packages of lightning_modules whose every file the Layout section names.
SUB_PACKAGES = ("nets", "losses", "training", "cli")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the packages and pyproject.toml under ``root``, in a fresh interpreter."""
    environment = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())", "--no-cache"],
        cwd=root, env=environment, capture_output=True, text=True, timeout=300,
    )


def test_the_import_rules_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "importer, imported, contract",
    [
        ("lightning_modules/losses/divergences.py", "import pytorch_lightning", "losses and nets are torch only"),
        ("lightning_modules/training/ema.py", "from lightning_modules import dcgan", "cli above the models"),
        ("datamodules/mnist.py", "import metrics", "datamodules import nothing"),
    ],
    ids=["Lightning in losses", "a model in training", "metrics in datamodules"],
)
def test_a_forbidden_import_breaks_the_rules(tmp_path, importer, imported, contract):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    path = tmp_path / importer
    path.write_text(f"{imported}  # a broken rule\n{path.read_text()}")

    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    summary = re.sub(r"\s+", " ", result.stdout.split("Broken contracts")[0])
    assert re.search(r"Contracts: \d+ kept, 1 broken", summary), result.stdout
    assert re.search(rf"{contract}(?:(?!KEPT).)*? BROKEN", summary), result.stdout


def layout_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]


def test_the_layout_section_names_every_file_of_lightning_modules():
    section = layout_section()
    package = ROOT / "lightning_modules"
    expected = [f"{name}/" for name in (*PACKAGES, *SUB_PACKAGES)]
    expected += [path.name for path in package.glob("*.py")]
    expected += [path.name for name in SUB_PACKAGES for path in (package / name).glob("*.py") if path.name != "__init__.py"]
    missing = [name for name in expected if not re.search(rf"(?<![\w/]){re.escape(name)}", section)]
    assert not missing, f"README.md's Layout section does not name {missing}"


def test_the_layout_section_names_no_file_that_is_gone():
    tree = layout_section().split("```")[1]
    named = set(re.findall(r"\b(\w+\.py)\b", tree))
    existing = {path.name for path in (ROOT / "lightning_modules").rglob("*.py")}
    assert named <= existing, f"README.md's Layout section names files that do not exist: {sorted(named - existing)}"


def test_every_module_of_lightning_modules_is_in_a_layer_of_the_import_rules():
    """A new model file joins the layers contract, or its imports would go unchecked."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [contract["layers"] for contract in contracts if contract["type"] == "layers"]
    layered = {name.strip() for layer in layers for name in re.split(r"[:|]", layer)}
    package = ROOT / "lightning_modules"
    modules = {path.stem for path in package.glob("*.py") if path.name != "__init__.py"}
    modules |= {path.name for path in package.iterdir() if (path / "__init__.py").is_file()}
    assert modules == layered, f"in the tree, not in a layer: {sorted(modules - layered)}; in a layer, not in the tree: {sorted(layered - modules)}"


@pytest.mark.slow  # a subprocess of the CLI
@pytest.mark.parametrize("command", ["lightning_modules.cli.report", "lightning_modules.cli.seeds"])
def test_the_entry_points_the_readme_documents_run(command):
    assert f"python -m {command} " in (ROOT / "README.md").read_text()
    result = subprocess.run([sys.executable, "-m", command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m {command} ")
