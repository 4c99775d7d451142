"""Pre-flight check of scenario files, run by the entry points before Hydra composes.

Hydra already rejects an unknown key, but its message names only the file and the key. For a
scenario, users need to know which agent (and which script step) holds the typo, so the
selected scenario files are checked first against the same dataclass schemas.
"""

from __future__ import annotations

import re
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from townlet.config.errors import one_line
from townlet.config.schema import (
    AgentConfig,
    ExpectationConfig,
    IntentConfig,
    PlacementConfig,
    ScenarioConfig,
)
from townlet.scenarios.build import CONF_DIR, load_config


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
        for kind in ("script", "day_off_script"):
            script = agent.get(kind) if isinstance(agent, dict) else None
            for j, intent in enumerate(script or []):
                problems += [
                    f"{at}: {kind}[{j}]: unknown key '{key}' (known: {_known(IntentConfig)})"
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
    """Exit with status 2 and a one-line message per problem when a selected scenario file has
    a typo, or when the command line's config does not compose or fails validation."""
    problems: list[str] = []
    for name in selected_scenarios(argv, conf_dir):
        path = conf_dir / "scenario" / f"{name}.yaml"
        if path.is_file():
            problems += lint_scenario(
                yaml.safe_load(path.read_text()) or {}, f"scenario/{name}.yaml"
            )
    if not problems:
        problems += check_command_line(argv, conf_dir)
    if problems:
        print("error: " + "\nerror: ".join(problems), file=sys.stderr)
        raise SystemExit(2)


def check_command_line(argv: list[str], conf_dir: Path = CONF_DIR) -> list[str]:
    """Compose and validate the config a single run would get; [] when it is fine.

    Multiruns (-m) and Hydra's own flags are left to Hydra, which composes per job (the trainer
    validates each job again)."""
    if any(token.startswith("-") for token in argv):
        return []
    overrides = [
        token
        for token in argv
        if not token.lstrip("+~").startswith(("hydra.", "hydra/"))
        and ("=" in token or token[:1] == "~")
    ]
    try:
        load_config(overrides, conf_dir)  # composed and validated once
    except Exception as error:  # any composition error becomes one line naming the key
        return [name_agent(one_line(error), argv, conf_dir)]
    return []


def name_agent(message: str, argv: list[str], conf_dir: Path = CONF_DIR) -> str:
    """Prefix a message about `scenario.agents[N]` with the scenario and the agent's id."""
    match = re.search(r"scenario\.agents(?:\[(\d+)\]|\.(\d+))", message)
    names = selected_scenarios(argv, conf_dir)
    if not match or len(names) != 1:
        return message
    index = int(match.group(1) or match.group(2))
    path = conf_dir / "scenario" / f"{names[0]}.yaml"
    block = (yaml.safe_load(path.read_text()) or {}).get("scenario", {}) if path.is_file() else {}
    agents = block.get("agents") or []
    agent = agents[index].get("id", f"#{index}") if index < len(agents) else f"#{index}"
    return f"scenario '{block.get('name', names[0])}': agent '{agent}': {message}"
