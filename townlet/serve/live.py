"""Live inference for the server: a checkpoint's policy acts in its run's scenario, one env,
streaming `episode_start`, `state_update` (mode "live") and `episode_end`; a finished episode
starts the next. Each step is shaped like a one-step recording, so the viewer sees exactly the
messages replays produce."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import torch
import yaml

from townlet.config.errors import ConfigError
from townlet.config.schema import RecordingConfig, TownletConfig
from townlet.config.untrusted import config_from_file
from townlet.policy.checkpoint import CheckpointError, load_policy, names_of
from townlet.recording.format import Episode
from townlet.recording.frame import frame_of, outcome_of
from townlet.recording.index import RecordingIndex
from townlet.recording.recorder import EpisodeRecorder, episode_header
from townlet.serve.frames import EpisodeFrames
from townlet.util.remembered import Remembered
from townlet.util.run_dir import RunDir
from townlet.world import World

log = logging.getLogger("townlet.serve")

POLICIES_REMEMBERED = 8
"""Checked networks a live factory keeps (a few checkpoints of one run)."""


def run_config(run_dir: Path) -> TownletConfig:
    """The composed config a run was trained with (Hydra's .hydra/config.yaml), typed."""
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the run's composed config is missing")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not a YAML config ({str(error).splitlines()[0]})") from error
    return config_from_file(values, str(path))


def policy_checkpoint_name(run_dir: Path) -> str:
    """The run's policy: `selected` when the run chose its weights by validation
    (`train.select_every`), else `latest`."""
    return "selected" if RunDir.of(run_dir).selected.is_file() else "latest"


class LiveFactory:
    """Opens live sessions for one run directory."""

    def __init__(self, run_dir: Path, record: bool = False) -> None:
        self.run_dir, self.record = Path(run_dir), record
        self.config = run_config(self.run_dir)
        probe = World(self.config.world, self.config.scenario, num_envs=1, seed=self.config.seed)
        self._names = {
            "meter_names": list(probe.names.meters),
            "action_names": list(probe.names.actions),
        }
        self._policies: Remembered[torch.nn.Module] = Remembered(POLICIES_REMEMBERED)

    @classmethod
    def from_checkpoint(cls, checkpoint: Path) -> LiveFactory:
        return cls(Path(checkpoint).resolve().parents[1])

    def names(self) -> dict[str, Any]:
        return dict(self._names)

    def default_name(self) -> str:
        return policy_checkpoint_name(self.run_dir)

    def resolve(self, checkpoint: str) -> Path:
        """A checkpoint of this run: a name (`latest`, `best`, `epoch_000010`, with or without
        `.pt`) or a path inside the run's `checkpoints/` folder. Anything else is refused with
        the same words whether or not such a file exists, so clients learn nothing about files
        outside the served folders."""
        folder = RunDir.of(self.run_dir).checkpoints.resolve()
        refused = ValueError(
            f"not a checkpoint of run {self.run_dir.name} "
            "(give latest, best or a file name from its checkpoints/ folder)"
        )
        if not checkpoint or len(checkpoint) > 255 or "\x00" in checkpoint:
            raise refused
        name = checkpoint if checkpoint.endswith(".pt") else f"{checkpoint}.pt"
        candidate = Path(name)
        path = (
            (folder / candidate).resolve() if not candidate.is_absolute() else candidate.resolve()
        )
        if path.parent != folder:
            path = (self.run_dir.resolve() / candidate).resolve()
            if path.parent != folder:
                raise refused
        if not path.is_file():
            raise FileNotFoundError(f"run {self.run_dir.name} has no checkpoint {path.name}")
        return path

    def open(self, checkpoint: str, world: World | None = None) -> LiveSession:
        """A live session of the checkpoint's policy; in `world` (a branch from a recording's
        tick) when given, else in a fresh world of the run's scenario."""
        path = self.resolve(checkpoint)
        world = world or World(
            self.config.world, self.config.scenario, num_envs=1, seed=self.config.seed
        )
        try:
            net = self.policy(path, world)
        except CheckpointError as error:
            raise ValueError(str(error).replace(str(path), path.name)) from error
        return LiveSession(
            self.config, net, self.run_dir.name, world, self.run_dir if self.record else None
        )

    def policy(self, path: Path, world: World) -> torch.nn.Module:
        """The checkpoint's network for `world`, loaded and checked once per file version and
        world names, then shared by every session (inference only, no gradients): loading and
        checking took a worker 20-40 ms of held GIL per `branch_live`."""
        stat = path.stat()
        names = names_of(world)
        key = (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino, repr(names), world.device)
        return self._policies.get(key, lambda: load_policy(path, world)[0])


class LiveSession:
    """One client's live run; with `record_dir`, every live episode is also recorded there (the
    same recorder training uses) under an id claimed in the run's index when the episode starts,
    so any number of live sessions and a training run can record into one run at once.

    `step()` is plain blocking work (policy inference, a world tick, building the message); the
    server calls it from a worker thread and sends what it returns."""

    def __init__(
        self,
        config: TownletConfig,
        net: torch.nn.Module,
        run: str,
        world: World,
        record_dir: Path | None = None,
    ) -> None:
        self.world, self.net = world, net
        self.generator = torch.Generator(device=self.world.device).manual_seed(config.seed)
        agents = list(range(self.world.layout.num_agents))
        self.header = episode_header(self.world, agents, run, config.seed, "live")
        self.run, self.episode, self.step_index, self.cumulative = run, 0, 0, 0.0
        self.obs = self.world.observe()
        self.recorder: EpisodeRecorder | None = None
        self.claims: RecordingIndex | None = None
        if record_dir is not None:
            self.owner = f"live:{uuid.uuid4().hex}"
            self.recorder = EpisodeRecorder(
                RecordingConfig(enabled=True, periodic=1),
                record_dir,
                self.world,
                run_id=f"live-{run}",
                seed=config.seed,
                config_hash="live",
                owner=self.owner,
            )
            self.claims = RecordingIndex.for_run(record_dir)
            self.episode = self.claims.claim(self.owner)[0]

    def start_message(self) -> dict[str, Any]:
        return {
            "type": "episode_start",
            "episode_id": self.episode,
            "scenario": self.world.layout.scenario_name,
            "run": self.run,
            "agents": self.header["agent_ids"],
        }

    def step(self) -> list[dict[str, Any]]:
        """One tick: the state update, and at an episode's end `episode_end` and the next
        episode's `episode_start`."""
        world, obs = self.world, self.obs
        with torch.no_grad():
            action, _, _, value, logits = self.net.get_action_and_value(
                obs.map_codes[0], obs.features[0], obs.action_mask[0], generator=self.generator
            )
        step = frame_of(world, obs.features[0], action, logits, value)
        if self.recorder is not None:
            self.recorder.before_step()
        result = world.step(action.view(1, -1))
        step.update(outcome_of(result))
        if self.recorder is not None:
            self.recorder.tap(**step)
        columns = {name: tensor.unsqueeze(0).numpy() for name, tensor in step.items()}
        self.cumulative += float(result.reward[0].mean())
        metadata = {
            "episode_id": self.episode,
            "survival_steps": self.step_index + 1,
            "total_reward": self.cumulative,
            "curriculum_stage": 1,
            "timestamp": 0.0,
        }
        message = EpisodeFrames(
            Episode({**self.header, "metadata": metadata}, columns), self.run
        ).message(0, "live")
        message.update(step=self.step_index, cumulative_reward=self.cumulative)
        message.pop("replay_metadata", None)
        messages = [message]
        self.step_index += 1
        self.obs = result.obs
        if bool(result.env_done[0]):
            if self.recorder is not None:
                self.recorder.end_episode(self.episode, 1, result.episode_return[0])
            messages.append(
                {
                    "type": "episode_end",
                    "episode_id": self.episode,
                    "steps": self.step_index,
                    "total_reward": self.cumulative,
                }
            )
            self.episode = (
                self.claims.claim(self.owner)[0] if self.claims is not None else self.episode + 1
            )
            self.step_index, self.cumulative = 0, 0.0
            self.obs = world.reset()
            messages.append(self.start_message())
        return messages

    def close(self) -> None:
        if self.recorder is not None:
            for problem in self.recorder.close():
                log.warning("live recording: %s", problem)
        if self.claims is not None:
            self.claims.close()
