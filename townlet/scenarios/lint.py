"""Pre-flight check of scenario files, run by the entry points before Hydra composes.

Hydra already rejects an unknown key, but its message names only the file and the key. For a
scenario, users need to know which agent (and which script step) holds the typo, so the
selected scenario files are checked first against the same dataclass schemas.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from townlet.config.schema import (
    AgentConfig,
    ExpectationConfig,
    IntentConfig,
    PlacementConfig,
    ScenarioConfig,
)
from townlet.scenarios.build import CONF_DIR


def _unknown(node: Any, schema: type) -> list[str]:
    if not isinstance(node, dict):
        return []
    known = {f.name for f in fields(schema)}
    return [key for key in node if key not in known]


def _known(schema: type) -> str:
    return ", ".join(f.name for f in fields(schema))


def lint_scenario(raw: dict, label: str) -> list[str]:
    """Messages for unknown keys in a scenario file's `scenario` block, naming where they are."""
    block = raw.get("scenario") if isinstance(raw, dict) else None
    if not isinstance(block, dict):
        return []
    name = block.get("name", label)
    where = f"scenario '{name}' ({label})"
    problems = [
        f"{where}: unknown key '{key}' (known: {_known(ScenarioConfig)})"
        for key in _unknown(block, ScenarioConfig)
    ]
    for i, agent in enumerate(block.get("agents") or []):
        agent_id = agent.get("id", f"#{i}") if isinstance(agent, dict) else f"#{i}"
        at = f"{where}: agent '{agent_id}' (agents[{i}])"
        problems += [
            f"{at}: unknown key '{key}' (known: {_known(AgentConfig)})"
            for key in _unknown(agent, AgentConfig)
        ]
        script = agent.get("script") if isinstance(agent, dict) else None
        for j, intent in enumerate(script or []):
            problems += [
                f"{at}: script[{j}]: unknown key '{key}' (known: {_known(IntentConfig)})"
                for key in _unknown(intent, IntentConfig)
            ]
    for i, placement in enumerate(block.get("affordances") or []):
        problems += [
            f"{where}: affordances[{i}]: unknown key '{key}' (known: {_known(PlacementConfig)})"
            for key in _unknown(placement, PlacementConfig)
        ]
    for i, expect in enumerate(block.get("expect") or []):
        problems += [
            f"{where}: expect[{i}]: unknown key '{key}' (known: {_known(ExpectationConfig)})"
            for key in _unknown(expect, ExpectationConfig)
        ]
    return problems


def selected_scenarios(argv: list[str], conf_dir: Path = CONF_DIR) -> list[str]:
    """Scenario option names chosen on the command line, else the default one."""
    chosen: list[str] = []
    for token in argv:
        key, _, value = token.partition("=")
        if key.lstrip("+~") == "scenario" and value:
            chosen += [v.strip() for v in value.split(",") if v.strip()]
    if chosen:
        return chosen
    defaults = yaml.safe_load((conf_dir / "config.yaml").read_text()).get("defaults", [])
    for entry in defaults:
        if isinstance(entry, dict) and "scenario" in entry:
            return [entry["scenario"]]
    return []


def preflight(argv: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Exit with status 2 and a clear message when a selected scenario file has a typo."""
    problems: list[str] = []
    for name in selected_scenarios(argv, conf_dir):
        path = conf_dir / "scenario" / f"{name}.yaml"
        if path.is_file():
            problems += lint_scenario(
                yaml.safe_load(path.read_text()) or {}, f"scenario/{name}.yaml"
            )
    if problems:
        print("error: " + "\nerror: ".join(problems), file=sys.stderr)
        raise SystemExit(2)
