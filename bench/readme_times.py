"""Measures the wall times the README quotes: the quick start's two commands and the test suite.

Each command runs in a subprocess from the repository root (in a temporary working folder for the
quick start, so its runs/ does not touch yours); the result is one Markdown line with the date, the
machine (CPU count, load average before the run) and the times, to paste into the README:

    python -m bench.readme_times                 # quick start and `pytest` (about 12 minutes on 2 cores)
    python -m bench.readme_times --only quickstart
    python -m bench.readme_times --dry-run       # print the commands and the machine, run nothing

Times depend on the load: measure on an otherwise idle machine, or read the load average printed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

QUICKSTART = [
    ("stage one", [sys.executable, "-m", "lightning_modules", "fit", "--config", str(ROOT / "configs/quickstart_stage_one.yaml")]),
    ("stage two", [sys.executable, "-m", "lightning_modules", "fit", "--config", str(ROOT / "configs/quickstart.yaml")]),
]
TESTS = [("tests", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests")])]


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"{cpus}-core CPU ({platform.processor() or platform.machine()}), load average {load}"


def command_env() -> dict[str, str]:
    """The environment a measured command runs in: this checkout importable, W&B offline unless set."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.setdefault("WANDB_MODE", "offline")
    return env


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=command_env(), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} minutes"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["quickstart", "tests"], help="measure one of the two")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and the machine, run nothing")
    args = parser.parse_args(argv)
    commands = (QUICKSTART if args.only != "tests" else []) + (TESTS if args.only != "quickstart" else [])
    where = machine()
    if args.dry_run:
        print(where)
        for name, command in commands:
            print(f"{name}: {' '.join(command)}")
        return
    times = {}
    with tempfile.TemporaryDirectory() as work:
        for name, command in commands:
            # the quick start writes runs/ in a scratch folder; the tests run from the repository
            times[name] = timed(command, ROOT if name == "tests" else Path(work))
            print(f"{name}: {times[name]:.0f} s", file=sys.stderr)
    parts = []
    if "stage one" in times:
        total = times["stage one"] + times["stage two"]
        parts.append(f"quick start {minutes(total)} (stage one {times['stage one']:.0f} s, stage two {times['stage two']:.0f} s)")
    if "tests" in times:
        parts.append(f"`pytest` {minutes(times['tests'])}")
    print(f"{datetime.date.today().isoformat()}, {where}, Python {platform.python_version()}: {'; '.join(parts)}")


if __name__ == "__main__":
    main()
