"""The golden file and capture metrics files on disk."""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA_VERSION = 1
VERSION_KEY = "schema_version"
DEFAULT_GOLDEN = Path(__file__).resolve().parent / "data" / "rollout_scenario_stats.json"
"""`townlet/golden/data` links to `tests/golden` in the repository; a wheel ships the file."""
METRICS_SUFFIX = "_metrics.json"


class GoldenError(ValueError):
    """A golden or metrics file that cannot be used; the message names the file."""


def load_golden(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """{scenario: {sample_file: {metric: value}}} from a golden file."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise GoldenError(f"{path}: golden file not found") from error
    except json.JSONDecodeError as error:
        raise GoldenError(f"{path}: not JSON ({error})") from error
    version = data.get(VERSION_KEY)
    if version != SCHEMA_VERSION:
        raise GoldenError(f"{path}: schema_version {version!r}, expected {SCHEMA_VERSION}")
    return {k: v for k, v in data.items() if k != VERSION_KEY}


def golden_payload(scenarios: dict[str, dict]) -> dict:
    return {VERSION_KEY: SCHEMA_VERSION, **{k: scenarios[k] for k in sorted(scenarios)}}


def find_metrics_files(root: Path) -> list[Path]:
    """Every capture metrics file at or below `root` (a run dir or a multirun folder)."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob(f"*{METRICS_SUFFIX}") if not p.name.startswith("."))


def load_metrics(path: Path) -> tuple[str, dict[str, dict[str, float]]]:
    """(scenario, {sample_file: metrics}) from a capture's metrics file."""
    try:
        data = json.loads(Path(path).read_text())
        return data["scenario"], data["samples"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise GoldenError(f"{path}: not a capture metrics file ({error})") from error
