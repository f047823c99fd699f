"""bench.quickstart_seeds: the commands it runs and how it reads a distiller's axes."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from bench.quickstart_seeds import commands, describe_axes
from lightning_modules.cli import resolved_config


def test_each_command_runs_the_seed_it_is_given_and_stage_two_reads_stage_ones_checkpoint(tmp_path):
    (_, one), (_, two) = commands(3, tmp_path)
    configs = []
    for command in (one, two):
        at = command.index("--config")
        assert command[at - 1] == "fit"
        configs.append(resolved_config(command[at + 1], *command[at + 2 :]))
    assert [config["seed_everything"] for config in configs] == [3, 3]  # not the configs' 0
    assert configs[0]["trainer"]["default_root_dir"] == str(tmp_path / "quickstart_stage_one")
    assert configs[1]["model"]["init_args"]["distiller_checkpoint"] == str(tmp_path / "quickstart_stage_one/checkpoints/last.ckpt")


def turned(row: str) -> int:
    return int(re.fullmatch(r".*, turned (\d+)°\)", row).group(1))


def test_a_position_code_turned_by_a_known_angle_reads_as_turned_by_it():
    generator = np.random.default_rng(0)
    n = 20000
    factors = {"shape": generator.integers(0, 3, n), "scale": generator.integers(0, 6, n),
               "posX": generator.integers(0, 32, n), "posY": generator.integers(0, 32, n)}
    x, y = ((factors[name] - 15.5) / 9.2 for name in ("posX", "posY"))  # equal spreads: the turn is the mix's angle
    turn = math.radians(20)
    codes = np.stack([
        math.cos(turn) * x + math.sin(turn) * y,  # a posX row drifting along y
        factors["scale"] + 0.1 * generator.standard_normal(n),
        generator.standard_normal(n),  # collapsed: left out
        factors["shape"].astype(float),
    ], axis=1)
    rows = describe_axes(codes, np.array([3.0, 2.0, 0.01, 1.0]), factors)
    assert len(rows) == 3
    assert rows[0].startswith("posX (KL 3.0") and abs(turned(rows[0]) - 20) <= 1
    assert rows[1].startswith("scale (KL 2.0") and "turned" not in rows[1]
    assert rows[2].startswith("shape (KL 1.0") and "shape 1.00" in rows[2]


@pytest.mark.parametrize("turn_degrees", [0, 45])
def test_the_turn_spans_a_straight_row_to_a_diagonal(turn_degrees):
    generator = np.random.default_rng(1)
    factors = {name: generator.integers(0, size, 20000) for name, size in (("shape", 3), ("scale", 6), ("posX", 32), ("posY", 32))}
    turn = math.radians(turn_degrees)
    code = math.cos(turn) * (factors["posY"] - 15.5) + math.sin(turn) * (factors["posX"] - 15.5)
    (row,) = describe_axes(code[:, None], np.array([3.0]), factors)
    assert row.startswith("posY" if turn_degrees == 0 else "pos") and abs(turned(row) - turn_degrees) <= 1
