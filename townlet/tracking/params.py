"""The composed config as MLflow params: flattened dotted keys, within MLflow's limits.

Scalars and lists of scalars are params; a list of records (agents with their scripts,
placements, expectations, anneal phases) is a blob nobody compares in a table, so its param
says how many entries it has and where the whole config is (the run's `.hydra` artifact)."""

from __future__ import annotations

import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

MAX_VALUE = 6000  # MLflow's param value limit
MAX_KEY = 250
TRUNCATED = "…[truncated]"


def flatten(node: Any, prefix: str = "") -> dict[str, str]:
    """{'ppo.learning_rate': '0.00025', 'scenario.agents': '[...json...]', ...}."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    out: dict[str, str] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value:
                out.update(flatten(value, path))
            elif _is_records(value):
                out[path[:MAX_KEY]] = f"{len(value)} entries (.hydra/config.yaml)"
            else:
                out[path[:MAX_KEY]] = _value(value)
    else:
        out[prefix or "value"] = _value(node)
    return out


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value)


def _value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - len(TRUNCATED)] + TRUNCATED
