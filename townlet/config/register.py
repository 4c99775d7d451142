"""Register the schemas with Hydra so `conf/config.yaml` can list the root schema first."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from townlet.config.schema import TownletConfig

SCHEMA_NAME = "townlet_schema"


def register_configs() -> None:
    """Store the root schema; every group's YAML is then merged into a typed node."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=TownletConfig)
