"""The manual builds strictly from a clean copy, and its generated reference covers the code."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
    reason="mkdocs is a dev dependency (make setup installs it)",
)


def generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def schema_keys(cls, prefix: str = "") -> list[str]:
    """Every field path of the schema, walked here independently of the generator."""
    keys = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint, key = hints[field.name], f"{prefix}{field.name}"
        inner = [a for a in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(a)]
        if not dataclasses.is_dataclass(hint):  # a group of keys is not a key itself
            keys.append(key)
        if inner:
            origin = typing.get_origin(hint)
            step = "[]." if origin is list else ".<name>." if origin is dict else "."
            keys += schema_keys(inner[0], key + step)
    return keys


def build(folder: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict` of the site in `folder`."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "-d", "site"],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )


def test_the_manual_builds_strictly_and_its_reference_covers_every_key(tmp_path):
    from townlet.config.schema import TownletConfig
    from townlet.telemetry.schema import ALL_KEYS

    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "docs", copy / "docs", ignore=shutil.ignore_patterns("reference"))
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    generator().main(copy / "docs" / "reference")
    config_page = (copy / "docs" / "reference" / "config.md").read_text()
    missing = [k for k in schema_keys(TownletConfig) if f"| `{k}` |" not in config_page]
    assert not missing, f"config keys missing from the reference: {missing[:10]}"
    assert "| `population.background[].source` | scripted \\| random \\| checkpoint |" in (
        config_page
    )
    assert "| [0, 1] |" in config_page  # ranges from the validation
    telemetry_page = (copy / "docs" / "reference" / "telemetry.md").read_text()
    assert all(f"| `{key.name}` |" in telemetry_page for key in ALL_KEYS)
    assert "## `townlet populations`" in (copy / "docs" / "reference" / "cli.md").read_text()
    world_page = (copy / "docs" / "reference" / "world.md").read_text()
    assert "| `Bed` | 1 | 20 | always | 0 | energy +0.5 | - |" in world_page  # conf/world/default
    assert "| `Cafe` | 2 | 3 | 7:00-20:00 |" in world_page
    built = build(copy)
    assert built.returncode == 0, built.stderr[-3000:]
    assert (copy / "site" / "reference" / "config" / "index.html").is_file()
    api = (copy / "site" / "reference" / "api" / "index.html").read_text()
    assert 'id="townlet.world.world.World.step"' in api  # mkdocstrings read the docstrings
    assert 'id="townlet.envs.pettingzoo_env' in api
    # a broken link fails the build
    (copy / "docs" / "index.md").write_text("[gone](nowhere.md)\n")
    broken = build(copy)
    assert broken.returncode != 0 and "nowhere.md" in broken.stderr


def test_the_benchmarks_page_shows_each_kept_figure_with_its_stamp(tmp_path):
    figures = tmp_path / "figures.jsonl"
    stamp = {
        "script": "benchmarks/world_step.py",
        "date": "2026-12-07 12:00 UTC",
        "machine": "AMD EPYC, 2 cores",
        "commit": "d7640db94bc6",
        "load": 1.25,
    }
    import json
    import sys as _sys

    _sys.path.insert(0, str(ROOT / "benchmarks"))
    from figures import FiguresError, figure_from_line

    kept = [
        figure_from_line(
            {
                "name": "agent_steps_per_sec",
                "value": 764000.0,
                "unit": "1/s",
                "envs": 1024,
                "agents": 4,
            },
            stamp,
        ),
        figure_from_line({"name": "progress", "value": "half", "unit": "-"}, stamp),
    ]
    assert kept[1] is None  # a line that is not a figure is not kept
    figures.write_text(json.dumps(kept[0]) + "\n")
    page = generator().benchmarks_page(figures)
    assert "## `benchmarks/world_step.py`" in page
    assert (
        "| `agent_steps_per_sec` | 764,000 | 1/s | agents=4, envs=1024 | 2026-12-07 12:00 UTC"
        in page
    )
    assert "| d7640db | AMD EPYC, 2 cores | 1.25 |" in page
    for bad, message in (
        ('{"name": "x"}\n', "'script' must be a str"),
        ("not json\n", "not JSON"),
        ("[1, 2]\n", "not a JSON object"),
        ('{"pad": "' + "x" * 5000 + '"}\n', "line over 4096 bytes"),
    ):
        figures.write_text(bad)
        with pytest.raises(FiguresError, match=message) as refused:
            generator().benchmarks_page(figures)
        assert str(refused.value).startswith(f"{figures}:1: ")


def test_the_manuals_python_examples_run(tmp_path, monkeypatch):
    """Every ```python block of the manual's pages runs as written (the bash blocks run in the
    README-commands test)."""
    import re

    monkeypatch.chdir(tmp_path)
    blocks = [
        (page, body)
        for page in sorted((ROOT / "docs").rglob("*.md"))
        if "reference" not in page.parts
        for body in re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    ]
    assert blocks, "the manual has Python examples"
    for page, body in blocks:
        exec(compile(body, str(page), "exec"), {"__name__": "__docs__"})
