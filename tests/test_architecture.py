"""Layers point down: a package imports only packages below it, so a reader of the world never
loads the trainer and a change in a tool never reaches the simulation."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import townlet

PACKAGE = Path(townlet.__file__).parent
# world <- scenarios <- policy/capture/recording <- serve/video <- cli (issue 17)
LAYER = {
    "util": 0,
    "config": 1,
    "golden": 1,
    "telemetry": 1,
    "tracking": 2,
    "world": 2,
    "curriculum": 3,
    "scenarios": 3,
    "recording": 3,
    "policy": 4,
    "envs": 4,
    "capture": 5,
    "serve": 5,
    "video": 5,
    "apps": 6,
    "cli": 7,
}


def _imports(path: Path) -> set[str]:
    """Top-level townlet packages a module imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "townlet" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_package_has_a_layer():
    packages = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
        or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert packages == set(LAYER), "give new packages a layer here"


def test_imports_point_down_only():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py":  # entry points sit on top by nature
            continue
        relative = path.relative_to(PACKAGE).parts
        own = relative[0].removesuffix(".py")
        if own == "__init__":
            continue
        for target in _imports(path):
            if target != own and LAYER[target] >= LAYER[own]:
                upward.append(f"{'/'.join(relative)} ({own}) imports {target}")
    assert not upward, "\n".join(upward)


def test_readers_of_recordings_and_checkpoints_load_no_trainer():
    code = (
        "import sys, townlet.capture, townlet.serve, townlet.serve.live; "
        "print(sorted(m for m in sys.modules if m.startswith('townlet.policy.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "train" not in loaded and "ppo" not in loaded, loaded
    assert "townlet.policy.checkpoint" in loaded


def test_no_function_in_the_package_is_over_a_hundred_lines():
    """Long functions hid the tick's phases and the trainer's steps; each now reads in one
    screen. A function over 100 lines is named here with its length."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 100:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({lines} lines)")
    assert not long, long
