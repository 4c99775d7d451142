"""Configs read from files (recording headers, checkpoints): data, never instructions.

A file's config is typed and checked exactly like a composed one (unknown keys, types, ranges,
consistency and the hard size limits of `validate`) before anything is built from it, and no
interpolation in it is ever resolved: a header holding `${oc.env:SECRET}` once had the server
send the variable back. A checkpoint's scenario is only ever a name of `conf/scenario`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from townlet.config.errors import ConfigError
from townlet.config.schema import TownletConfig
from townlet.config.validate import checked, one_line_error
from townlet.util.remembered import Remembered

# The schema's own interpolations, which Hydra writes unresolved into a run's config.yaml; a
# file may hold these exact strings and nothing else of the kind.
SCHEMA_INTERPOLATIONS = frozenset({"${scenario.seed}"})
MAX_DEPTH = 16
MAX_NODES = 100_000
SCENARIO_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def _one_line(text: str) -> str:
    """A message of one line whatever a file's keys hold (newlines shown escaped)."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def refuse_interpolation(value: Any, where: str, depth: int = 0, seen: list[int] | None = None):
    """Raise ConfigError at the first string holding `${` (or a structure too deep or large)."""
    seen = [0] if seen is None else seen
    seen[0] += 1
    if depth > MAX_DEPTH or seen[0] > MAX_NODES:
        raise ConfigError(_one_line(f"{where}: nested too deeply or too large to be a config"))
    if isinstance(value, str):
        if "${" in value and value not in SCHEMA_INTERPOLATIONS:
            raise ConfigError(
                _one_line(f"{where}: interpolations are not allowed in a file ({value!r:.60})")
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(_one_line(f"{where}: key {key!r:.40} is not a string"))
            refuse_interpolation(key, f"{where}.{key}", depth + 1, seen)
            refuse_interpolation(item, f"{where}.{key}", depth + 1, seen)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            refuse_interpolation(item, f"{where}.{i}", depth + 1, seen)
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise ConfigError(_one_line(f"{where}: a {type(value).__name__} is not a config value"))


def config_from_file(parts: Any, source: str) -> TownletConfig:
    """The project config with the top-level keys `parts` (e.g. {"world": ..., "scenario":
    ...}) from a file, typed and checked; ConfigError naming `source` and the key otherwise.

    Checking is OmegaConf work that holds the GIL for tens of milliseconds; every episode of a
    run carries the same config, so the outcome (config or refusal) is remembered by the
    digest of the parts: the server's other clients once waited 100 ms and more behind
    `branch_live` requests re-checking one header."""
    if not isinstance(parts, dict):
        raise ConfigError(f"{source}: the config is not a mapping")
    refuse_interpolation(parts, source)
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    outcome = _CHECKED.get(key, lambda: _checked_outcome(parts))
    if isinstance(outcome, str):
        raise ConfigError(_one_line(f"{source}: {outcome}"))
    return copy.deepcopy(outcome)  # callers own their config


CHECKED_REMEMBERED = 64
_CHECKED: Remembered[TownletConfig | str] = Remembered(CHECKED_REMEMBERED)


def _checked_outcome(parts: dict[str, Any]) -> TownletConfig | str:
    """The typed config, or the refusal's text (without its source)."""
    try:
        return checked(OmegaConf.merge(OmegaConf.structured(TownletConfig), parts))
    except ConfigError as error:
        return str(error)
    except Exception as error:  # the merge's own type errors
        return str(one_line_error(error))


def scenario_name(value: Any, conf_dir: Path, source: str) -> str:
    """A checkpoint's scenario: the name of a file in `conf_dir/scenario`, nothing else."""
    if not isinstance(value, str) or not SCENARIO_NAME.fullmatch(value):
        raise ConfigError(f"{source}: scenario {value!r:.60} is not a scenario name")
    if not (conf_dir / "scenario" / f"{value}.yaml").is_file():
        raise ConfigError(f"{source}: no scenario named '{value}' in {conf_dir / 'scenario'}")
    return value
