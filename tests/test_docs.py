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
    built = build(copy)
    assert built.returncode == 0, built.stderr[-3000:]
    assert (copy / "site" / "reference" / "config" / "index.html").is_file()
    # a broken link fails the build
    (copy / "docs" / "index.md").write_text("[gone](nowhere.md)\n")
    broken = build(copy)
    assert broken.returncode != 0 and "nowhere.md" in broken.stderr
