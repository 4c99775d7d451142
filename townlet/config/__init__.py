"""Typed configuration: schemas registered in Hydra's ConfigStore, plus cross-node validation."""

from townlet.config.register import register_configs
from townlet.config.schema import TownletConfig

__all__ = ["TownletConfig", "register_configs"]
