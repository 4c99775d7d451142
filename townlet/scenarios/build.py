"""Turn a composed Townlet config into a running world."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from townlet.config import register_configs
from townlet.config.schema import ScenarioConfig, TownletConfig, WorldConfig
from townlet.config.validate import validate
from townlet.world import World

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
"""`townlet/conf`: a link to the repository's top-level `conf/`, and the config a wheel ships."""


def typed(cfg: DictConfig) -> TownletConfig:
    """The composed config as schema dataclasses (interpolations resolved), after the checks
    composition cannot make (unknown keys added with `+`, ranges, memory)."""
    return validate(cfg)


def build_world(
    cfg: DictConfig | TownletConfig,
    num_envs: int = 1,
    auto_reset: bool = False,
    seed: int | None = None,
) -> World:
    """A world for the config's scenario; the seed defaults to the config's `seed`."""
    config = typed(cfg) if isinstance(cfg, DictConfig) else cfg
    world: WorldConfig = config.world
    scenario: ScenarioConfig = config.scenario
    return World(
        world,
        scenario,
        num_envs=num_envs,
        seed=config.seed if seed is None else seed,
        auto_reset=auto_reset,
    )


def load_config(
    overrides: list[str] | None = None, config_dir: Path = CONF_DIR, check: bool = True
) -> DictConfig:
    """Compose the project config outside a Hydra app (tests, notebooks, tools); with `check`,
    validated like an entry point's (`townlet.config.validate`)."""
    register_configs()
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides or []))
    if check:
        validate(cfg)
    return cfg
