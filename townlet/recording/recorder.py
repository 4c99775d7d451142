"""Record chosen episodes of env 0 while training (or from a live server), off the hot path.

Per tick the caller hands over env 0's tensors (already on the CPU); they are copied into
preallocated buffers. When an episode ends the policy decides; a kept episode is handed to a
writer thread through a bounded queue. When the queue is full the recorder waits
`block_seconds`, then drops the whole episode (never single steps) and counts it. `close()`
drains the queue. On start, an existing recordings folder is merged into the index, so a run
killed mid-write resumes with a consistent index; an episode that is already recorded is
skipped, never overwritten.

An episode handed to the writer is never changed afterwards: a reason added later (the
curriculum's pre-transition ring) is a separate job that rewrites the file and its row, so the
file and the index always agree. Ids are claimed in the index (`RecordingIndex.claim`): the
producer's own episode number when free, else the next free id, so concurrent writers (training,
live sessions) never collide. Writer failures are logged as they happen and counted.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from townlet import __version__
from townlet.config.schema import RecordingConfig
from townlet.recording.format import (
    ENV_COLUMNS,
    FORMAT_VERSION,
    PAIR_COLUMNS,
    Episode,
    pack_array,
)
from townlet.recording.index import FOLDER_NAME, RecordingIndex, reindex
from townlet.recording.policies import RecordingPolicy
from townlet.util.event_codes import ChatEvent, ShiftEvent
from townlet.util.version import git_commit
from townlet.world import World
from townlet.world.constants import ACTION_NAMES
from townlet.world.state_hash import PARTS

_STOP = object()
log = logging.getLogger("townlet.recording")


@dataclass
class _Kept:
    episode: Episode
    written: bool


class EpisodeRecorder:
    def __init__(
        self,
        config: RecordingConfig,
        run_dir: Path,
        world: World,
        run_id: str,
        seed: int,
        config_hash: str,
        owner: str | None = None,
        links: dict[str, str] | None = None,
        sources: list[str] | None = None,
    ) -> None:
        layout = world.layout
        self.config, self.policy = config, RecordingPolicy(config)
        self.agents = (
            list(config.agents) if config.agents is not None else list(range(layout.num_agents))
        )
        if not self.agents or not all(0 <= a < layout.num_agents for a in self.agents):
            raise ValueError(
                f"recording.agents must index the scenario's {layout.num_agents} agents"
            )
        run_dir = Path(run_dir)
        if (run_dir / FOLDER_NAME).is_dir() and any((run_dir / FOLDER_NAME).iterdir()):
            reindex(run_dir)  # recover from a killed writer: rows exactly for the files present
        self.index = RecordingIndex.for_run(run_dir)
        self.owner = owner or f"run:{run_id}"
        self._ids: dict[int, int] = {}  # producer's episode number -> id it was recorded under
        self.header = episode_header(world, self.agents, run_id, seed, config_hash)
        self.header["links"] = dict(links or {})  # run directory, MLflow run id and store
        if sources is not None:  # a population: what drove each recorded agent
            self.header["agent_sources"] = [sources[a] for a in self.agents]
        t, a, m, k = layout.episode_ticks, len(self.agents), layout.num_meters, len(ACTION_NAMES)
        u, parts = len(layout.utility_names), len(PARTS)
        self.world = world  # env 0's start state is read from it when an episode begins
        self._start: dict[str, Any] | None = None
        self._index = torch.tensor(self.agents)
        self._all = self.agents == list(range(layout.num_agents))
        self.buffers = {
            "positions": torch.zeros(t, a, 2, dtype=torch.int64),
            "meters": torch.zeros(t, a, m),
            "actions": torch.zeros(t, a, dtype=torch.int64),
            "rewards": torch.zeros(t, a),
            "dones": torch.zeros(t, a, dtype=torch.bool),
            "interaction_progress": torch.zeros(t, a),
            "time_of_day": torch.zeros(t, dtype=torch.int64),
            "queued": torch.zeros(t, a, dtype=torch.int64),
            "using": torch.zeros(t, a, dtype=torch.int64),
            "action_probs": torch.zeros(t, a, k),
            "values": torch.zeros(t, a),
            "outages": torch.zeros(t, u, dtype=torch.bool),
            "completed": torch.zeros(t, a, dtype=torch.int64),
            "shift_event": torch.zeros(t, a, dtype=torch.int64),
            "fainted": torch.zeros(t, a, dtype=torch.bool),
            "chat": torch.zeros(t, a, dtype=torch.int64),
            "chat_partner": torch.zeros(t, a, dtype=torch.int64),
            "chat_quality": torch.zeros(t, a),
            "helped": torch.zeros(t, a, dtype=torch.bool),
            "took_over": torch.zeros(t, a, dtype=torch.int64),
            "rivalry": torch.zeros(t, a, a),
            "familiarity": torch.zeros(t, a, a),
            "state_hash": torch.zeros(t, dtype=torch.int64),
            "state_parts": torch.zeros(t, parts, dtype=torch.uint8),
        }
        if world.calendar.observed:  # a multi-day town: the weekday and the rent
            self.buffers["weekday"] = torch.zeros(t, dtype=torch.int64)
            self.buffers["rent"] = torch.zeros(t, a, dtype=torch.int64)
        self.t = 0
        self._tapped: tuple[str, ...] = ()  # columns the producer hands over (set at t = 0)
        self._partial = False  # the episode in progress was not tapped whole (see resumed_blind)
        self.ring: deque[_Kept] = deque(maxlen=max(config.stage_pre_transition, 1))
        self.written = self.dropped = self.skipped = 0
        self.errors: list[str] = []
        self._queue: queue.Queue = queue.Queue(maxsize=max(config.queue_size, 1))
        self._thread = threading.Thread(target=self._write_loop, name="episode-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ hot path
    def before_step(self) -> None:
        """Call before stepping the world for a tick you will tap: at an episode's first tick it
        keeps env 0's start state, which re-simulation (`townlet recordings verify`) starts from."""
        if self.t == 0:
            self._start = env_start(self.world, 0)

    def tap(self, **step: torch.Tensor) -> None:
        """Env 0's columns for one tick (`frame_of` + `outcome_of`): per agent (A, ...) except
        the env columns (time_of_day (), outages (U,))."""
        t = self.t
        if t >= self.buffers["actions"].shape[0]:
            return  # past the scenario's tick limit (only without auto-reset)
        if t == 0:  # only what the producer gives is written: no zero column posing as data
            self._tapped = tuple(name for name in self.buffers if name in step)
        for name, value in step.items():
            if name not in self.buffers:  # a column this world does not record
                continue
            if name in ENV_COLUMNS:
                self.buffers[name][t] = value
            elif name in PAIR_COLUMNS and not self._all:
                self.buffers[name][t] = value[self._index][:, self._index]
            else:
                self.buffers[name][t] = value if self._all else value.index_select(0, self._index)
        self.t = t + 1

    def end_episode(
        self, episode_id: int, stage: int, returns: torch.Tensor, reasons: list[str] | None = None
    ) -> None:
        """The episode just tapped has ended; `returns` (A,) are its agents' true returns.
        Decide (or keep it for the `reasons` given), and hand it over when kept."""
        steps, self.t = self.t, 0
        total = float(returns.cpu().index_select(0, self._index).mean())
        if reasons is None:
            reasons = self.policy.reasons(episode_id, total, stage)
        if self._partial:  # only its tail was seen after a resume: never write a partial episode
            self._partial = False
            return
        if not reasons and not self.config.stage_pre_transition:
            return
        episode = self._snapshot(episode_id, steps, total, stage, reasons)
        if reasons:
            self._submit(episode)
        if self.config.stage_pre_transition:
            self.ring.append(_Kept(episode, bool(reasons)))

    def stage_changed(self, new_stage: int) -> None:
        """Write the ring buffer's episodes: the last ones before the transition. Episodes
        already handed to the writer are not touched: their reason is a job of its own."""
        reason = self.policy.pre_transition_reason(new_stage)
        for kept in self.ring:
            meta = kept.episode.metadata
            if kept.written:
                self._submit(("add_reason", meta["episode_id"], reason))
                continue
            metadata = {**meta, "recording_reason": reason, "recording_reasons": [reason]}
            self._submit(
                Episode({**kept.episode.header, "metadata": metadata}, kept.episode.columns)
            )
        self.ring.clear()

    def flush(self) -> None:
        """Wait until every episode handed over so far is written (before a checkpoint: a kill
        after it then loses nothing that ended before it)."""
        if self._thread.is_alive():
            self._queue.join()

    def close(self) -> list[str]:
        """Drain the queue and stop the writer (idempotent); return the writer's errors."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        return list(self.errors)

    def state_dict(self) -> dict[str, Any]:
        """The episode in progress (env 0's steps so far), for checkpoints: a resumed run then
        records it whole instead of dropping it as partial."""
        return {
            "t": self.t,
            "steps": {name: self.buffers[name][: self.t].clone() for name in self._tapped},
            "start": _bytes_as_tensors(self._start),
            "policy": self.policy.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.t = int(state["t"])
        for name, steps in state["steps"].items():
            self.buffers[name][: self.t] = steps
        self._tapped = tuple(name for name in self.buffers if name in state["steps"])
        self._start = _tensors_as_bytes(state.get("start"))
        self._partial = False

    def resumed_blind(self) -> None:
        """A run resumed from a checkpoint written while recording was off: the episode in
        progress is seen only from here, so it is dropped instead of written partially."""
        self._partial = True

    def stats(self) -> dict[str, int]:
        return {
            "recording_episodes_written": self.written,
            "recording_episodes_dropped": self.dropped,
        }

    # ------------------------------------------------------------------ internals
    def _snapshot(
        self, episode_id: int, steps: int, total: float, stage: int, reasons: list[str]
    ) -> Episode:
        columns = {name: self.buffers[name][:steps].numpy().copy() for name in self._tapped}
        metadata = {
            "episode_id": int(episode_id),
            "survival_steps": steps,
            "total_reward": total,
            "curriculum_stage": int(stage),
            "recording_reason": reasons[0] if reasons else "",
            "recording_reasons": list(reasons),
            "timestamp": time.time(),
        }
        header = {**self.header, "metadata": metadata}
        if self._start is not None:
            header["start"] = self._start
        return Episode(header=header, columns=columns)

    def _submit(self, job: Any) -> None:
        try:
            self._queue.put(job, timeout=self.config.block_seconds)
        except queue.Full:
            self.dropped += 1

    def _write_loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                self._queue.task_done()
                break
            try:
                if isinstance(job, tuple):
                    self._add_reason(*job[1:])
                else:
                    self._write(job)
            except Exception as error:  # keep writing later episodes; report what failed
                message = f"recording: {type(error).__name__}: {error}"
                self.errors.append(message)
                log.warning(message)
            finally:
                self._queue.task_done()
        self.index.close()

    def _write(self, episode: Episode) -> None:
        number = int(episode.metadata["episode_id"])
        episode_id, fresh = self.index.claim(self.owner, number)
        if not fresh:
            self.skipped += 1  # a resumed run replaying an episode it already recorded
            return
        if episode_id != number:  # another writer holds this number: keep it in the metadata
            metadata = {**episode.metadata, "episode_id": episode_id, "source_episode": number}
            episode = Episode({**episode.header, "metadata": metadata}, episode.columns)
        self.index.write(episode)
        self._ids[number] = episode_id
        self.written += 1

    def _add_reason(self, number: int, reason: str) -> None:
        episode_id = self._ids.get(number, number)
        row = self.index.get(episode_id)
        if row is None or reason in row["recording_reasons"]:
            return
        episode = self.index.load(episode_id)
        metadata = {
            **episode.metadata,
            "recording_reasons": [*episode.metadata.get("recording_reasons", []), reason],
        }
        self.index.rewrite(Episode({**episode.header, "metadata": metadata}, episode.columns))


def _bytes_as_tensors(value: Any) -> Any:
    """The start state's packed arrays with their bytes as uint8 tensors, for a checkpoint:
    the safe loader refuses `bytes()`, which is how pickle writes an empty array's b"" (a town
    without affordances has an empty stock)."""
    if isinstance(value, dict):
        return {key: _bytes_as_tensors(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return torch.frombuffer(bytearray(value), dtype=torch.uint8) if value else _NO_BYTES
    return value


def _tensors_as_bytes(value: Any) -> Any:
    """Undo `_bytes_as_tensors` (a checkpoint from before it holds bytes, kept as they are)."""
    if isinstance(value, dict):
        return {
            key: item.numpy().tobytes()
            if key == "data" and isinstance(item, torch.Tensor)
            else _tensors_as_bytes(item)
            for key, item in value.items()
        }
    return value


_NO_BYTES = torch.zeros(0, dtype=torch.uint8)


def env_start(world: World, env: int) -> dict[str, Any]:
    """What re-simulating env `env` from here needs: its state rows (leading dim kept, 1), the
    curriculum's factor on the configured decay (the rule itself comes from the header's
    config, so a changed rule shows) and who takes part in new episodes."""
    state = world.state
    return {
        "state": {
            f.name: pack_array(getattr(state, f.name)[env : env + 1].cpu().numpy())
            for f in dataclasses.fields(state)
        },
        "decay_scale": world.tunables.decay_scale,
        "fresh_alive": pack_array(world.fresh_alive()[env : env + 1].cpu().numpy()),
    }


def episode_header(
    world: World, agents: list[int], run_id: str, seed: int, config_hash: str
) -> dict[str, Any]:
    """The self-describing part of an episode of `world` (everything but its metadata)."""
    layout = world.layout
    return {
        "format_version": FORMAT_VERSION,
        "run_id": run_id,
        "scenario": layout.scenario_name,
        "seed": seed,
        "config_hash": config_hash,
        "grid": {
            "width": layout.width,
            "height": layout.height,
            "walls": [list(w) for w in layout.walls],
        },
        "affordances": [
            {"name": name, "type": layout.affordance_types[t], "x": xy[0], "y": xy[1]}
            for name, t, xy in zip(
                layout.instance_names, layout.inst_type.tolist(), layout.inst_xy, strict=True
            )
        ],
        "agent_ids": [layout.agent_ids[a] for a in agents],
        "scenario_agent_ids": list(layout.agent_ids),  # chat_partner indexes these
        "utilities": {name: list(world.config.utilities[name]) for name in layout.utility_names},
        "meter_names": list(layout.meter_names),
        "affordance_types": list(layout.affordance_types),  # what `completed` indexes
        "shift_events": [event.name.lower() for event in ShiftEvent],
        "chat_events": [event.name.lower() for event in ChatEvent],
        "action_names": list(ACTION_NAMES),
        "ticks_per_day": layout.ticks_per_day,
        # what re-simulation needs besides each episode's start state and actions
        "world_config": dataclasses.asdict(world.config),
        "scenario_config": dataclasses.asdict(world.scenario),
        "num_envs": world.num_envs,
        "code": {"townlet": __version__, "git_commit": git_commit()},
    }
