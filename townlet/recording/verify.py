"""Re-simulate a recorded episode and compare its state, tick by tick, with the recording.

A version-2 recording with state hashes carries what this needs: the composed world and
scenario config, the seed, the recorded env's state at the episode's start and every agent's
action per tick. The world is rebuilt with one env, set to that start state, and stepped with
the recorded actions; before each step its state digest must equal the recorded one. The first
tick where it does not is reported with the parts whose bytes differ (positions, meters, queue,
...). An env's episode draws only from its own key, so an env recorded from a batch of many
re-simulates alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import torch

from townlet.config.errors import ConfigError
from townlet.config.untrusted import config_from_file
from townlet.recording.format import Episode, unpack_array
from townlet.world import World
from townlet.world.fast_path import FastPath
from townlet.world.state import WorldState
from townlet.world.state_hash import PARTS, state_digest


@dataclass
class Verification:
    episode_id: int
    steps: int  # steps compared (all of them when verified)
    verified: bool | None  # None: the recording cannot be verified (see reason)
    divergent_step: int | None = None
    parts: list[str] = field(default_factory=list)
    reason: str = ""
    refused: bool = False  # the file's header is not a config this project would build

    def line(self) -> str:
        name = f"episode {self.episode_id}"
        if self.verified is None:
            return f"{name}: not verifiable ({self.reason})"
        if self.refused:
            return f"{name}: refused ({self.reason})"
        if self.verified:
            return f"{name}: verified {self.steps} steps"
        where = ", ".join(self.parts) or "a part the recording does not name"
        return f"{name}: diverges at step {self.divergent_step} ({where} differ)"


def unverifiable_reason(episode: Episode) -> str | None:
    header = episode.header
    if int(header.get("format_version", 1)) < 2:
        return "a version-1 file has no state hashes"
    if "state_hash" not in episode.columns or "start" not in header:
        return "recorded without state hashes or a start state"
    if list(header["agent_ids"]) != list(header.get("scenario_agent_ids", [])):
        return "only some agents were recorded; re-simulation needs every agent's actions"
    return None


def rebuild(episode: Episode) -> World:
    """A one-env world in the episode's start state, built from the recording alone."""
    header = episode.header
    config = config_from_file(
        {"world": header.get("world_config"), "scenario": header.get("scenario_config")},
        f"episode {episode.metadata.get('episode_id')} header",
    )
    seed = header.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ConfigError(f"episode {episode.metadata.get('episode_id')} header: bad seed")
    world = World(config.world, config.scenario, num_envs=1, seed=seed)
    label = f"episode {episode.metadata.get('episode_id')} header"
    start = header["start"]
    values = start_state(world, start, label)
    state = WorldState(**values)
    world.restore(
        {
            "state": values,
            "fresh_alive": _fitting(start, "fresh_alive", world.fresh_alive(), label),
            "decay": world.tunables.base_decay * _decay_scale(start, label),
            "generator": world.generator.get_state(),
            "flags": FastPath.recompute(state).as_dict(),
        }
    )
    return world


def start_state(world: World, start: object, label: str) -> dict[str, torch.Tensor]:
    """The header's start state as tensors that fit `world` (every field of its state, each of
    the world's dtype and shape, positions on the grid and instances that exist), or a
    ConfigError naming what does not: the header is data from anywhere."""
    given = start.get("state") if isinstance(start, dict) else None
    if not isinstance(given, dict):
        raise ConfigError(f"{label}: the start state is not a mapping of arrays")
    expected = {f.name: getattr(world.state, f.name) for f in fields(WorldState)}
    unknown = sorted(set(given) - set(expected))
    # older files: rng_key drawn anew; outage_left none (no random outages then)
    missing = sorted(set(expected) - set(given) - {"rng_key", "outage_left"})
    if unknown or missing:
        listed = (
            f"unknown: {', '.join(map(str, unknown)) or '-'}; missing: {', '.join(missing) or '-'}"
        )
        raise ConfigError(f"{label}: the start state's fields differ from the world's ({listed})")
    values = {name: _fitting(given, name, expected[name], label) for name in given}
    if "outage_left" not in values:
        values["outage_left"] = torch.zeros_like(expected["outage_left"]).cpu()
    layout = world.layout
    bounds = {
        "pos": (0, layout.padded_width * layout.padded_height - 1),
        "using": (-1, layout.inst_cell.numel() - 1),
        "queued": (-1, layout.inst_cell.numel() - 1),
    }
    for name, (lo, hi) in bounds.items():
        if (
            name in values
            and values[name].numel()
            and not (int(values[name].min()) >= lo and int(values[name].max()) <= hi)
        ):
            raise ConfigError(f"{label}: the start state's {name} is outside [{lo}, {hi}]")
    return values


def _fitting(part: dict, name: str, like: torch.Tensor, label: str) -> torch.Tensor:
    """One stored array of the start state, refused unless it has `like`'s dtype and shape."""
    spec = part.get(name)
    try:
        array = unpack_array(spec)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ConfigError(f"{label}: the start state's {name} is not an array ({error})") from error
    shape, dtype = tuple(array.shape), str(array.dtype)
    wanted_dtype = str(like.numpy().dtype) if like.device.type == "cpu" else None
    if shape != tuple(like.shape) or (wanted_dtype is not None and dtype != wanted_dtype):
        raise ConfigError(
            f"{label}: the start state's {name} is {dtype} {list(shape)}, the world's "
            f"{wanted_dtype} {list(like.shape)}"
        )
    return torch.from_numpy(array)


def _decay_scale(start: dict, label: str) -> float:
    scale = start.get("decay_scale")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale <= 1e3:
        raise ConfigError(f"{label}: the start state's decay_scale {scale!r} is not in [0, 1000]")
    return float(scale)


def verify_episode(episode: Episode) -> Verification:
    episode_id = int(episode.metadata.get("episode_id", -1))
    reason = unverifiable_reason(episode)
    if reason is not None:
        return Verification(episode_id, 0, None, reason=reason)
    try:
        _, divergent, parts = _replay(episode, episode.steps - 1)
    except ConfigError as error:
        return Verification(episode_id, 0, False, reason=str(error), refused=True)
    if divergent is not None:
        return Verification(episode_id, divergent, False, divergent_step=divergent, parts=parts)
    return Verification(episode_id, episode.steps, True)


def world_at(episode: Episode, step: int) -> World:
    """A one-env world in exactly the recorded state before `step` (re-simulated from the
    episode's start, every tick's hash checked on the way); ValueError if it cannot be."""
    reason = unverifiable_reason(episode)
    if reason is not None:
        raise ValueError(
            f"cannot re-simulate episode {episode.metadata.get('episode_id')}: {reason}"
        )
    if not 0 <= step < episode.steps:
        raise ValueError(f"step {step} is outside the episode (0-{episode.steps - 1})")
    world, divergent, _ = _replay(episode, step)
    if divergent is not None:
        raise ValueError(f"the episode diverges from its recording at step {divergent}")
    return world


def _replay(episode: Episode, last: int) -> tuple[World, int | None, list[str]]:
    """Re-simulate from the start up to the state before step `last`, comparing every tick's
    digest: (the world there, the first divergent step or None, the parts that differ)."""
    world = rebuild(episode)
    hashes = episode.columns["state_hash"].astype(np.int64)
    parts = episode.columns["state_parts"].astype(np.uint8)
    actions = torch.from_numpy(episode.columns["actions"].astype(np.int64))
    for t in range(last + 1):
        digest, digest_parts = state_digest(world.state, 0)
        if digest != int(hashes[t]):
            names = zip(PARTS, digest_parts, parts[t], strict=True)
            return world, t, [name for name, a, b in names if a != b]
        if t < last:
            world.step(actions[t].view(1, -1))
    return world, None, []
