"""Register the schemas with Hydra so `conf/config.yaml` can list the root schema first."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from townlet.config.schema import ExportConfig, ServeConfig, TownletConfig

SCHEMA_NAME = "townlet_schema"
EXPORT_SCHEMA_NAME = "export_schema"


def register_configs() -> None:
    """Store the schemas; every YAML is then merged into a typed node."""
    store = ConfigStore.instance()
    store.store(name=SCHEMA_NAME, node=TownletConfig)
    store.store(name=EXPORT_SCHEMA_NAME, node=ExportConfig)
    store.store(name="serve_schema", node=ServeConfig)
