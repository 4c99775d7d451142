"""`state_update` messages of a recorded episode, built from the recording and its own names.

Each step's message is built and JSON-encoded once (orjson) and cached on the episode, so
playback at any speed only sends bytes.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from functools import cached_property
from typing import Any

import numpy as np
import orjson

from townlet.recording.events import (
    WEEKDAY_NAMES,
    closed_types,
    day_starts,
    episode_events,
    has_events,
    outages_by_step,
)
from townlet.recording.format import Episode, unpack_array
from townlet.recording.palette import agent_colour
from townlet.recording.situations import (
    agent_sources,
    jobs,
    queue_joins,
    queue_positions,
    relations,
    shift_states,
)
from townlet.recording.wording import worded

ENCODED_WINDOW = 2048
"""Encoded steps an episode keeps (about 7 minutes of playback at 5 steps/s)."""
SERIES_POINTS = 2048
"""Samples per timeline line at most: more than a chart's width in pixels."""
SERIES_MARKERS = 20_000
"""Event markers sent with a series at most (a town day has a few hundred)."""


class EpisodeFrames:
    """Lazily built, cached, encoded state updates for one episode."""

    def __init__(self, episode: Episode, run: str) -> None:
        self.episode, self.run = episode, run
        header, cols, meta = episode.header, episode.columns, episode.metadata
        self.header_bytes = held_bytes(header)
        self.steps = episode.steps
        self.agents = list(header["agent_ids"])
        self.meters = list(header["meter_names"])
        self.actions = list(header["action_names"])
        self.tpd = int(header.get("ticks_per_day") or 240)
        grid = header["grid"]
        self.grid_static = {
            "width": int(grid["width"]),
            "height": int(grid["height"]),
            "walls": [list(w) for w in grid.get("walls", [])],
        }
        self.affordances = list(header["affordances"])
        self.sources = agent_sources(episode)
        self.positions = cols["positions"].astype(np.int64).tolist()
        self.meter_values = np.round(cols["meters"].astype(np.float64), 4).tolist()
        self.action_ids = cols["actions"].astype(np.int64).tolist()
        self.rewards = cols["rewards"].astype(np.float64).mean(axis=1)
        self.agent_rewards = np.round(cols["rewards"].astype(np.float64), 4).tolist()
        self.cumulative = np.cumsum(self.rewards).tolist()
        self.progress = (
            np.round(cols["interaction_progress"].astype(np.float64), 3).tolist()
            if "interaction_progress" in cols
            else None
        )
        self.tod = cols["time_of_day"].astype(np.int64).tolist() if "time_of_day" in cols else None
        self.weekday = cols["weekday"].astype(np.int64).tolist() if "weekday" in cols else None
        self.using = cols["using"].astype(np.int64).tolist() if "using" in cols else None
        self.queued = cols["queued"].astype(np.int64).tolist() if "queued" in cols else None
        self.policy_key, self.policy = None, None
        for column, key in (("action_probs", "action_probabilities"), ("q_values", "q_values")):
            if column in cols:
                self.policy_key, self.policy = (
                    key,
                    np.round(cols[column].astype(np.float64), 4).tolist(),
                )
                break
        self.values = (
            np.round(cols["values"].astype(np.float64), 4).tolist() if "values" in cols else None
        )
        self.events = episode_events(episode) if has_events(episode) else None
        self.active = _active(episode)
        self.outages = outages_by_step(episode) if "outages" in cols else None
        self.closed = [closed_types(episode, out) for out in self.outages] if self.outages else None
        self.metadata = {
            "survival_steps": int(meta.get("survival_steps", self.steps)),
            "total_reward": float(meta.get("total_reward", 0.0)),
            "curriculum_stage": int(meta.get("curriculum_stage", 1)),
            "timestamp": float(meta.get("timestamp", 0.0)),
        }
        self.episode_id = int(meta["episode_id"])
        world_config = header.get("world_config") or {}
        self.observation_window = int((world_config.get("observation") or {}).get("window", 9))
        self.avoid_threshold = (world_config.get("rivalry") or {}).get("avoid_threshold")
        self.queue_places = queue_positions(episode)
        self.shifts = shift_states(episode)
        self.relations = relations(episode)
        self.jobs = jobs(episode)
        links = header.get("links") or {}
        self.source = {  # where the recording came from, for the viewer's info line
            "run_id": header.get("run_id"),
            "config_hash": header.get("config_hash"),
            **{k: links[k] for k in ("run_dir", "mlflow_run_id", "tracking_uri") if links.get(k)},
        }
        self._encoded: OrderedDict[int, bytes] = OrderedDict()

    def series(self) -> dict[str, Any]:
        """The whole episode per agent (meters, step reward, value estimate) and its event
        markers, for the page's timelines: sent once after `replay_loaded`.

        Bounded work and size whatever the episode's length: past SERIES_POINTS steps the
        lines are sampled every `stride` steps (rewards summed over each stride, so the
        cumulative line stays exact at the sampled steps) and at most SERIES_MARKERS markers
        are sent (`markers_total` counts them all). A 5,000,000-step episode's series once
        took 2 s of the event loop and gigabytes."""
        stride = max(1, -(-self.steps // SERIES_POINTS))
        sampled = slice(None, None, stride)
        meters = np.asarray(self.meter_values)[sampled]
        rewards = np.add.reduceat(
            np.asarray(self.agent_rewards, dtype=np.float64), np.arange(0, self.steps, stride)
        )
        values = None if self.values is None else np.asarray(self.values)[sampled]
        per_agent = {}
        for a, agent_id in enumerate(self.agents):
            entry = {
                "meters": {m: meters[:, a, i].tolist() for i, m in enumerate(self.meters)},
                "reward": np.round(rewards[:, a], 4).tolist(),
            }
            if values is not None:
                entry["value"] = values[:, a].tolist()
            per_agent[agent_id] = entry
        markers = [
            {"step": t, **event} for t, events in enumerate(self.events or []) for event in events
        ]
        markers += [
            worded({"step": t, "kind": "queue_join", "agent": self.agents[a], "at": self._name(i)})
            for t, a, i in queue_joins(self.episode)
        ]
        markers += [  # a multi-day episode's midnights, for the day axis
            worded({"step": t, "kind": "day", "weekday": WEEKDAY_NAMES[d % 7]})
            for t, d in day_starts(self.episode)
        ]
        markers.sort(key=lambda m: m["step"])
        return {
            "type": "episode_series",
            "episode_id": self.episode_id,
            "steps": self.steps,
            "stride": stride,
            "meter_names": self.meters,
            "agents": per_agent,
            "markers": markers[:SERIES_MARKERS],
            "markers_total": len(markers),
        }

    def series_bytes(self) -> bytes:
        """The series encoded, in the caller's (worker) thread rather than on the event loop."""
        return orjson.dumps(self.series())

    def message(self, step: int, mode: str = "replay") -> dict[str, Any]:
        t = step
        agents, affordances = [], []
        for a, agent_id in enumerate(self.agents):
            action = self.action_ids[t][a]
            agents.append(
                {
                    "id": agent_id,
                    "x": self.positions[t][a][0],
                    "y": self.positions[t][a][1],
                    "color": agent_colour(a),
                    "last_action": {
                        "id": action,
                        "name": self.actions[action] if action < len(self.actions) else str(action),
                    },
                    **({"active": self.active[t][a]} if self.active is not None else {}),
                    **({"source": self.sources[a]} if self.sources is not None else {}),
                    **self._situation(t, a),
                }
            )
        for i, aff in enumerate(self.affordances):
            busy = self.using is not None and i in self.using[t]
            queue = (
                [self.agents[a] for a, q in enumerate(self.queued[t]) if q == i]
                if self.queued
                else []
            )
            if self.queue_places and len(queue) > 1:  # in the order they are served
                place = {self.agents[a]: p[1] for a, p in enumerate(self.queue_places[t]) if p}
                queue.sort(key=lambda agent_id: place.get(agent_id, 0))
            affordances.append(
                {
                    "type": aff["type"],
                    "name": aff["name"],
                    "x": aff["x"],
                    "y": aff["y"],
                    "busy": busy,
                    "queue": queue,
                    **({"closed": aff["type"] in self.closed[t]} if self.closed else {}),
                }
            )
        message: dict[str, Any] = {
            "type": "state_update",
            "mode": mode,
            "run": self.run,
            "episode_id": self.episode_id,
            "step": t,
            "cumulative_reward": self.cumulative[t],
            "reward": float(self.rewards[t]),
            "grid": {**self.grid_static, "agents": agents, "affordances": affordances},
            "agent_meters": {
                agent_id: {"meters": dict(zip(self.meters, self.meter_values[t][a], strict=False))}
                for a, agent_id in enumerate(self.agents)
            },
            "time_of_day": None if self.tod is None else self.tod[t] % self.tpd,
            **({"weekday": WEEKDAY_NAMES[self.weekday[t] % 7]} if self.weekday is not None else {}),
            "ticks_per_day": self.tpd,
            "replay_metadata": {"total_steps": self.steps, "current_step": t, **self.metadata},
        }
        if self.progress is not None:  # absent, not zeros, where the recording lacks it
            message["interaction_progress"] = dict(zip(self.agents, self.progress[t], strict=True))
        if self.relations is not None:
            message["relations"] = self.relations[t]
        if self.policy is not None:
            message[self.policy_key] = {
                agent_id: dict(zip(self.actions, self.policy[t][a], strict=False))
                for a, agent_id in enumerate(self.agents)
            }
        message["agent_rewards"] = dict(zip(self.agents, self.agent_rewards[t], strict=True))
        if self.events is not None:  # absent, not empty, where the recording lacks them
            message["events"] = self.events[t]
        if self.outages is not None:
            message["outages"] = self.outages[t]
        if self.values is not None:
            message["value"] = {
                agent_id: self.values[t][a] for a, agent_id in enumerate(self.agents)
            }
        return message

    def _situation(self, t: int, a: int) -> dict[str, Any]:
        """The agent's queue place and shift state at step t, where the recording has them."""
        out: dict[str, Any] = {}
        place = self.queue_places[t][a] if self.queue_places else None
        if place:
            out["queue"] = {"at": self._name(place[0]), "place": place[1], "of": place[2]}
        if self.shifts:
            out["shift"] = self.shifts[t][a]
        if self.jobs and self.jobs[a]:
            out["job"] = self.jobs[a]
        return out

    def _name(self, instance: int) -> str:
        return self.affordances[instance]["name"] if instance < len(self.affordances) else "?"

    def encoded(self, step: int) -> bytes:
        """The step's state update as bytes; at most ENCODED_WINDOW steps are kept (the least
        recently sent go first), so a long episode holds a bounded window of frames, not all."""
        cached = self._encoded.get(step)
        if cached is None:
            cached = self._encoded[step] = orjson.dumps(self.message(step))
            if len(self._encoded) > ENCODED_WINDOW:
                self._encoded.popitem(last=False)
        else:
            self._encoded.move_to_end(step)
        return cached

    def encode_ahead(self, steps: int) -> None:
        """Encode the first `steps` steps now (in a worker thread): playback starts by sending
        bytes, and later steps (about 60 us each) are encoded as they are first played."""
        for step in range(min(steps, self.steps)):
            self.encoded(step)

    @cached_property
    def nbytes(self) -> int:
        """Approximate memory held at most: the header, the columns (kept as Python lists) and
        a full window of encoded messages, estimated from the first. Fixed for the episode, so
        computed once: the cache adds it on entry and subtracts the same on eviction."""
        columns = 8 * sum(int(a.nbytes) for a in self.episode.columns.values())  # as lists
        window = min(self.steps, ENCODED_WINDOW)
        return self.header_bytes + columns + window * len(orjson.dumps(self.message(0)))


def held_bytes(value: Any) -> int:
    """Memory a decoded header holds (its dicts, lists, strings and numbers): a small file can
    carry a header of many megabytes, which the cache must count like the columns."""
    total, pending = 0, [value]
    while pending:
        item = pending.pop()
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return total


def _active(episode: Episode) -> list[list[bool]] | None:
    """Per step and agent: taking part (not left out by the curriculum, not fainted yet), from
    the start state and the faint events; None when the recording has neither."""
    start = episode.header.get("start")
    if start is None or "fainted" not in episode.columns:
        return None
    fainted = np.cumsum(episode.columns["fainted"].astype(np.int64), axis=0) > 0
    alive = unpack_array(start["state"]["alive"])[0].astype(bool)
    if alive.shape[0] != fainted.shape[1]:  # only some agents recorded
        alive = np.ones(fainted.shape[1], dtype=bool)
    before = np.vstack(
        [np.zeros_like(fainted[:1]), fainted[:-1]]
    )  # a faint counts from the next step
    return (alive[None, :] & ~before).tolist()
