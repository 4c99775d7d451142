"""A stable hash of a resolved config: what makes two artifacts comparable."""

from __future__ import annotations

import hashlib

from omegaconf import DictConfig, OmegaConf

from townlet.config.schema import TownletConfig


def config_hash(cfg: DictConfig | TownletConfig) -> str:
    container = OmegaConf.structured(cfg) if not isinstance(cfg, DictConfig) else cfg
    text = OmegaConf.to_yaml(container, resolve=True, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
