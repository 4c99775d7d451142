"""Checks on the final composed config that Hydra's typing cannot make.

Hydra types every key, but `+group.key=...` bypasses struct mode and numbers are only typed, not
ranged. `validate` runs after composition (entry points, `load_config`, the trainer) and raises a
one-line `ConfigError` naming the key: a key nothing reads, a NaN or infinite float, a number
outside its range, or a training job that would not fit in memory.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import typing
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from townlet.config.errors import ConfigError
from townlet.config.schema import TownletConfig


@dataclass(frozen=True)
class Range:
    """A closed interval unless `above` (strictly greater than lo) is set; None is unbounded."""

    lo: float | None = None
    hi: float | None = None
    above: bool = False

    def holds(self, value: float) -> bool:
        if self.lo is not None and (value <= self.lo if self.above else value < self.lo):
            return False
        return self.hi is None or value <= self.hi

    def describe(self) -> str:
        low = "-inf" if self.lo is None else f"{self.lo:g}"
        high = "inf" if self.hi is None else f"{self.hi:g}"
        return f"{'(' if self.above else '['}{low}, {high}]"


POSITIVE = Range(0, None, above=True)
NON_NEGATIVE = Range(0, None)
AT_LEAST_ONE = Range(1, None)
UNIT = Range(0, 1)
HOUR = Range(0, 24)
PERCENT = Range(0, 100)

# Hard limits on every size a config (or a file's config) can ask for, checked before anything
# is allocated: a 4.8 KB recording header asking for a 3000 x 3000 town held a server for
# 351 s and 7.6 GB. Each is far above anything the project ships or measures.
MAX_SIDE = 1024
MAX_CELLS = 512 * 512
MAX_AGENTS = 1024
MAX_WINDOW = 63
MAX_EPISODE_TICKS = 100_000
MAX_DAYS = 366
MAX_HIDDEN = 8192
MAX_EMBEDDING = 256

# Dotted paths; `*` stands for any dict key or list index.
RANGES: dict[str, Range] = {
    "seed": NON_NEGATIVE,
    "world.ticks_per_day": Range(1, MAX_EPISODE_TICKS),
    "world.meters.*.decay": UNIT,
    "world.meters.*.initial": UNIT,
    "world.affordances.*.capacity": AT_LEAST_ONE,
    "world.affordances.*.duration": AT_LEAST_ONE,
    "world.affordances.*.open_hour": HOUR,
    "world.affordances.*.close_hour": HOUR,
    "world.affordances.*.cost": NON_NEGATIVE,
    "world.affordances.*.effects.*": Range(-1, 1),
    "world.affordances.*.stock": Range(-1, None),
    "world.jobs.*.shift_start": HOUR,
    "world.jobs.*.shift_end": HOUR,
    "world.jobs.*.grace_ticks": NON_NEGATIVE,
    "world.jobs.*.wage_per_tick": NON_NEGATIVE,
    "world.jobs.*.late_penalty": NON_NEGATIVE,
    "world.jobs.*.absent_penalty": NON_NEGATIVE,
    "world.rivalry.gain": NON_NEGATIVE,
    "world.rivalry.decay": UNIT,
    "world.rivalry.avoid_threshold": NON_NEGATIVE,
    "world.social.familiarity_decay": UNIT,
    "world.social.help_discount": UNIT,
    "world.social.chat_success_threshold": UNIT,
    "world.social.chat_cooldown_ticks": NON_NEGATIVE,
    "train.bc.ppo_anchor": NON_NEGATIVE,
    "train.bc.accuracy_every": AT_LEAST_ONE,
    "train.select_every": NON_NEGATIVE,
    "train.select_episodes": AT_LEAST_ONE,
    "world.reward.faint_penalty": NON_NEGATIVE,
    "world.reward.commute": NON_NEGATIVE,
    "world.reward.commute_lead_hours": HOUR,
    "world.reward.interaction_shaping": NON_NEGATIVE,
    "ppo.novelty_bonus": NON_NEGATIVE,
    "ppo.novelty_until": UNIT,
    "world.reward.rest_shaping": NON_NEGATIVE,
    "world.reward.rest_below": UNIT,
    "world.observation.window": Range(1, MAX_WINDOW),
    "world.rent.amount": UNIT,
    "world.rent.hour": HOUR,
    "world.rent.penalty": NON_NEGATIVE,
    "world.fatigue.below": UNIT,
    "world.fatigue.wage_factor": UNIT,
    "world.fatigue.faint_chance": UNIT,
    "scenario.days": Range(1, MAX_DAYS),
    "scenario.agents.*.day_off_script.*.ticks": NON_NEGATIVE,
    "scenario.agents.*.day_off_script.*.hour": HOUR,
    "scenario.width": Range(1, MAX_SIDE),
    "scenario.height": Range(1, MAX_SIDE),
    "scenario.ticks": Range(1, MAX_EPISODE_TICKS),
    "scenario.start_hour": HOUR,
    "scenario.start_hour_spread": HOUR,
    "scenario.start_meter_spread": UNIT,
    "scenario.start_anywhere": UNIT,
    "scenario.start_seated": UNIT,
    "scenario.seed": NON_NEGATIVE,
    "scenario.agents.*.meters.*": UNIT,
    "scenario.agents.*.script.*.ticks": NON_NEGATIVE,
    "scenario.agents.*.script.*.hour": HOUR,
    "ppo.num_envs": AT_LEAST_ONE,
    "ppo.rollout_ticks": AT_LEAST_ONE,
    "ppo.learning_rate": POSITIVE,
    "ppo.gamma": UNIT,
    "ppo.gae_lambda": UNIT,
    "ppo.num_minibatches": AT_LEAST_ONE,
    "ppo.update_epochs": AT_LEAST_ONE,
    "ppo.clip_coef": POSITIVE,
    "ppo.ent_coef": NON_NEGATIVE,
    "ppo.rent_shaping": NON_NEGATIVE,
    "ppo.vf_coef": NON_NEGATIVE,
    "ppo.max_grad_norm": POSITIVE,
    "ppo.hidden_size": Range(1, MAX_HIDDEN),
    "ppo.embedding_dim": Range(1, MAX_EMBEDDING),
    "recording.periodic": NON_NEGATIVE,
    "recording.top_percent": PERCENT,
    "recording.bottom_percent": PERCENT,
    "recording.performance_window": AT_LEAST_ONE,
    "recording.performance_min_history": NON_NEGATIVE,
    "recording.stage_first": NON_NEGATIVE,
    "recording.stage_pre_transition": NON_NEGATIVE,
    "recording.agents.*": NON_NEGATIVE,
    "recording.queue_size": AT_LEAST_ONE,
    "recording.block_seconds": NON_NEGATIVE,
    "curriculum.stages.*.decay_scale": NON_NEGATIVE,
    "curriculum.stages.*.agents": AT_LEAST_ONE,
    "curriculum.stages.*.duration_scale": Range(0, 1, above=True),
    "curriculum.stages.*.min_epochs": NON_NEGATIVE,
    "curriculum.window": AT_LEAST_ONE,
    "curriculum.survival_threshold": UNIT,
    "train.total_ticks": AT_LEAST_ONE,
    "train.bc.demo_envs": AT_LEAST_ONE,
    "train.bc.noise.*": UNIT,
    "train.bc.learning_rate": POSITIVE,
    "train.bc.minibatch": AT_LEAST_ONE,
    "train.bc.value_coef": NON_NEGATIVE,
    "train.anneal.*.epochs": AT_LEAST_ONE,
    "train.anneal_threshold": UNIT,
    "train.progress_every_sec": NON_NEGATIVE,
    "train.replay_chunk": AT_LEAST_ONE,
    "train.checkpoint_every": NON_NEGATIVE,
    "train.eval_every": NON_NEGATIVE,
    "train.eval_episodes": AT_LEAST_ONE,
    "train.return_window": AT_LEAST_ONE,
    "train.threads": NON_NEGATIVE,
    "telemetry.log_frequency": AT_LEAST_ONE,
    "telemetry.max_entries": NON_NEGATIVE,
    "capture.ticks": AT_LEAST_ONE,
    "capture.auto_seed_count": AT_LEAST_ONE,
    "capture.gamma": UNIT,
}

MEMORY_FRACTION = 0.8
"""A training job may plan to use at most this fraction of the machine's memory."""


def validate(cfg: DictConfig) -> TownletConfig:
    """The composed config, typed, after every check; raises `ConfigError` naming the key."""
    config = checked(cfg)
    check_memory(config)
    return config


def checked(cfg: DictConfig) -> TownletConfig:
    """`validate` without the memory check (which is about training on this machine): what a
    config read from a file must pass before anything is built from it."""
    unknown_keys(cfg, TownletConfig)
    try:
        config: TownletConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    except Exception as error:
        raise one_line_error(error) from error
    check_numbers(config)
    check_consistency(config)
    return config


def one_line_error(error: Exception) -> ConfigError:
    """OmegaConf's error (several lines, the key among them) as one line naming the key."""
    key = getattr(error, "full_key", None)
    lines = [line for line in str(error).splitlines() if line.strip()]
    text = f"{key}: " if key else ""
    return ConfigError(text + (lines[0] if lines else type(error).__name__))


def unknown_keys(node: Any, schema: Any, path: str = "") -> None:
    """Every key of `node` must be a field of its dataclass `schema` (recursively)."""
    if dataclasses.is_dataclass(schema):
        if not isinstance(node, DictConfig):
            return
        hints = _hints(schema)
        for key in node:
            where = f"{path}{key}"
            if key not in hints:
                known = ", ".join(hints)
                raise ConfigError(f"unknown config key '{where}' (known here: {known})")
            unknown_keys(node._get_node(key), _element_schema(hints[key]), f"{where}.")
    elif isinstance(schema, tuple) and isinstance(node, (DictConfig, ListConfig)):
        keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
        for key in keys:
            unknown_keys(node._get_node(key), schema[1], f"{path}{key}.")


def _element_schema(kind: Any) -> Any:
    """The dataclass a field holds: itself, or ("dict"|"list", element schema), else None."""
    if dataclasses.is_dataclass(kind):
        return kind
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is dict and len(args) == 2:
        return ("dict", _element_schema(args[1]))
    if origin is list and args:
        return ("list", _element_schema(args[0]))
    return None


@functools.cache
def _hints(schema: type) -> dict[str, Any]:
    """Field name -> resolved type (the schema module uses postponed annotations)."""
    return typing.get_type_hints(schema)


def check_numbers(config: TownletConfig) -> None:
    """Every float finite; every number with a declared range inside it."""
    for path, pattern, value in _leaves(config):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{path}={value}: must be a finite number")
        allowed = RANGES.get(pattern)
        if allowed is not None and not allowed.holds(value):
            raise ConfigError(f"{path}={value}: out of range {allowed.describe()}")


def _leaves(node: Any, path: str = "", pattern: str = ""):
    if dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            yield from _leaves(getattr(node, f.name), f"{path}{f.name}.", f"{pattern}{f.name}.")
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}{key}.", f"{pattern}*.")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, f"{path}{i}.", f"{pattern}*.")
    else:
        yield path.rstrip("."), pattern.rstrip("."), node


def check_consistency(config: TownletConfig) -> None:
    """Constraints between keys."""
    reward = config.world.reward
    if reward.clip_min > reward.clip_max:
        raise ConfigError(
            f"world.reward.clip_min={reward.clip_min} is above clip_max={reward.clip_max}"
        )
    window = config.world.observation.window
    if window % 2 == 0:
        raise ConfigError(f"world.observation.window={window}: must be odd")
    scenario = config.scenario
    if scenario.width * scenario.height > MAX_CELLS:
        raise ConfigError(
            f"scenario.width x scenario.height = {scenario.width * scenario.height} cells: "
            f"more than the limit of {MAX_CELLS}"
        )
    if len(scenario.agents) > MAX_AGENTS:
        raise ConfigError(f"scenario.agents: {len(scenario.agents)}, more than {MAX_AGENTS}")
    check_population(config)
    check_training_source(config)
    check_calendar(config)
    batch = config.ppo.num_envs * config.ppo.rollout_ticks * max(len(config.scenario.agents), 1)
    if config.ppo.num_minibatches > batch:
        raise ConfigError(
            f"ppo.num_minibatches={config.ppo.num_minibatches}: more than the {batch} "
            "transitions of one rollout"
        )


def check_calendar(config: TownletConfig) -> None:
    """A multi-day episode is whole days; a weekly rent needs days for it to fall due."""
    scenario, tpd = config.scenario, config.world.ticks_per_day
    if scenario.days > 1 and scenario.ticks != scenario.days * tpd:
        raise ConfigError(
            f"scenario.ticks={scenario.ticks}: a {scenario.days}-day scenario runs "
            f"{scenario.days} x {tpd} = {scenario.days * tpd} ticks"
        )
    if config.world.rent.amount > 0 and scenario.days == 1:
        raise ConfigError(
            f"world.rent.amount={config.world.rent.amount}: rent is weekly; it needs a "
            "scenario of more than one day (scenario.days)"
        )
    if config.ppo.rent_shaping > 0 and config.world.rent.amount == 0:
        raise ConfigError(
            f"ppo.rent_shaping={config.ppo.rent_shaping}: this town has no rent "
            "(world.rent.amount is 0)"
        )


def check_training_source(config: TownletConfig) -> None:
    """`train.source` and `train.anneal` both say what an epoch learns from; only the pairs
    that mean one thing pass (an anneal's PPO phases learn from `source`)."""
    train = config.train
    if train.source.value in ("replay", "mixed") and not train.capture_dir:
        raise ConfigError(
            f"train.source={train.source.value} needs train.capture_dir=<capture run dir>"
        )
    if train.source.value == "bc" and train.anneal:
        raise ConfigError(
            "train.source=bc clones for total_ticks' epochs, but train.anneal also schedules "
            "the run: set train.anneal=[] or a PPO source (rollout, replay, mixed)"
        )


def check_population(config: TownletConfig) -> None:
    """Background slots name the scenario's agents once each, leave at least one focal agent,
    and carry a checkpoint exactly when their source is one."""
    known = [agent.id for agent in config.scenario.agents]
    seen: set[str] = set()
    for i, slot in enumerate(config.population.background):
        where = f"population.background.{i}"
        if not slot.agents:
            raise ConfigError(f"{where}.agents: empty (name agents of scenario.agents)")
        for agent in slot.agents:
            if agent not in known:
                raise ConfigError(
                    f"{where}.agents: {agent!r:.40} is not an agent of scenario "
                    f"{config.scenario.name} ({', '.join(known)})"
                )
            if agent in seen:
                raise ConfigError(f"{where}.agents: {agent} is in two background slots")
            seen.add(agent)
        if (slot.source == "checkpoint") != (slot.checkpoint is not None):
            raise ConfigError(f"{where}.checkpoint: required when source=checkpoint and only then")
    if known and len(seen) == len(known):
        raise ConfigError("population.background: every agent is background; none is focal")


def training_bytes(config: TownletConfig) -> int:
    """A generous estimate of the memory a training job allocates up front, in bytes.

    Per stored transition: the map window as uint8 codes, features and several float32 buffers
    (log-probs, values, rewards, advantages, returns, masks); the update's float activations over
    one minibatch; the batched world's per-agent state and its per-cell tables (which grow with
    the grid times the window); the network with its gradients and Adam state."""
    agents = max(len(config.scenario.agents), 1)
    window = config.world.observation.window
    hidden, embedding = config.ppo.hidden_size, config.ppo.embedding_dim
    features = 64  # above the real feature count for any scenario shipped
    per_transition = window * window + 4 * features + 4 * 16
    transitions = config.ppo.num_envs * agents * config.ppo.rollout_ticks
    minibatch = transitions // max(config.ppo.num_minibatches, 1)
    activations = minibatch * 4 * (window * window * (embedding + 1) + 8 * hidden)
    world = config.ppo.num_envs * agents * (4 * (window * window + features) + 512)
    padded = (config.scenario.width + window) * (config.scenario.height + window)
    # per cell: each env's map codes (and a copy), the open-now table per tick of day, and
    # per agent its place features and path distances
    grid = padded * (
        2 * config.ppo.num_envs + 2 * config.world.ticks_per_day + agents * 4 * (features + 8)
    )
    parameters = embedding * window * window * hidden + (features + 3 * hidden + 8) * hidden
    network = 4 * 4 * parameters  # weights, gradients and Adam's two moments, float32
    return transitions * per_transition + activations + world + grid + network


def machine_bytes() -> int:
    """Physical memory of this machine (0 when it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_memory(config: TownletConfig, available: int | None = None) -> None:
    available = machine_bytes() if available is None else available
    needed = training_bytes(config)
    if available and needed > MEMORY_FRACTION * available:
        raise ConfigError(
            f"ppo.num_envs={config.ppo.num_envs}: training would need about "
            f"{needed / 2**30:.1f} GiB, more than {MEMORY_FRACTION:.0%} of this machine's "
            f"{available / 2**30:.1f} GiB; lower ppo.num_envs, ppo.rollout_ticks, "
            "ppo.hidden_size, world.observation.window or the grid"
        )
