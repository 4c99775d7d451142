"""`TrainState`: everything a training run carries from epoch to epoch, and so everything a
checkpoint holds — the counters, and the objects whose state must survive a resume.

The trainer reads and advances the counters; `state_dict` / `load_state_dict` are the only
places the checkpoint payload is written and read, so a new piece of state is added once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from townlet.curriculum import Curriculum
from townlet.policy.anneal import AnnealSchedule
from townlet.policy.checkpoint import CheckpointError, check_compatible, names_of
from townlet.policy.episode_stats import FinishedEpisodes
from townlet.policy.network import ActorCritic
from townlet.policy.novelty import VisitCounts
from townlet.policy.replay import ReplayStream
from townlet.recording.recorder import EpisodeRecorder
from townlet.world import World


@dataclass
class TrainState:
    net: ActorCritic
    optimizer: torch.optim.Optimizer
    bc_optimizer: torch.optim.Optimizer
    act_generator: torch.Generator  # samples actions in rollouts
    shuffle_generator: torch.Generator  # orders minibatches
    world: World
    curriculum: Curriculum
    finished: FinishedEpisodes  # running window of finished-episode statistics
    episode_faints: torch.Tensor  # (E,) faints in each env's episode in progress
    partial: torch.Tensor  # (E,) bool: the episode in progress began part way (ppo.stagger_starts)
    replay: ReplayStream | None = None
    schedule: AnnealSchedule | None = None
    recorder: EpisodeRecorder | None = None
    novelty: VisitCounts | None = None  # visit counts of the exploration bonus, when on
    epoch: int = 0  # the last epoch completed
    steps: int = 0  # agent-steps trained on
    cycle_id: int = 0  # data cycles (rollouts, passes over captures or demonstrations)
    best_return: float | None = None
    best_epoch: int | None = None

    def state_dict(self, extra: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint payload; `extra` adds what the trainer knows about the run (epoch
        count, config, telemetry offset)."""
        return {
            "epoch": self.epoch,
            "steps": self.steps,
            "cycle_id": self.cycle_id,
            "num_envs": self.world.num_envs,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generators": {
                "action": self.act_generator.get_state(),
                "shuffle": self.shuffle_generator.get_state(),
                "torch": torch.get_rng_state(),
            },
            "world": self.world.snapshot(),
            "curriculum": self.curriculum.state_dict(),
            "replay": self.replay.state_dict() if self.replay else None,
            "anneal": self.schedule.state_dict() if self.schedule else None,
            "bc_optimizer": self.bc_optimizer.state_dict(),
            "recording": self.recorder.state_dict() if self.recorder else None,
            "novelty": self.novelty.state_dict() if self.novelty else None,
            "best_return": self.best_return,
            "best_epoch": self.best_epoch,
            "finished_episodes": self.finished.state_dict(),
            "episode_faints": self.episode_faints.clone(),
            "partial_episodes": self.partial.clone(),
            "names": names_of(self.world),
            "network_shape": self.net.shape,
            **extra,
        }

    def load_state_dict(self, path: Path, data: dict[str, Any], max_epochs: int) -> None:
        """Continue from a checkpoint, after refusing one this run cannot continue."""
        check_compatible(path, data, names_of(self.world), self.net.shape)
        if data["num_envs"] != self.world.num_envs:
            raise CheckpointError(
                f"{path}: trained with ppo.num_envs={data['num_envs']}; this config has "
                f"{self.world.num_envs} (pass ppo.num_envs={data['num_envs']})"
            )
        if data["epoch"] > max_epochs:
            raise CheckpointError(
                f"{path}: already trained {data['epoch']} epochs, more than the {max_epochs} "
                "this config's train.total_ticks asks for"
            )
        self.net.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.act_generator.set_state(data["generators"]["action"])
        self.shuffle_generator.set_state(data["generators"]["shuffle"])
        torch.set_rng_state(data["generators"]["torch"])
        self.world.restore(data["world"])
        self.curriculum.load_state_dict(data["curriculum"])
        self.curriculum.apply(self.world)  # the stage's durations live outside the snapshot
        if self.replay is not None and data.get("replay"):
            self.replay.load_state_dict(data["replay"])
        if self.schedule is not None and data.get("anneal"):
            self.schedule.load_state_dict(data["anneal"])
        if data.get("bc_optimizer"):
            self.bc_optimizer.load_state_dict(data["bc_optimizer"])
        if self.recorder is not None:
            if data.get("recording"):  # the policy's history and env 0's episode in progress
                self.recorder.load_state_dict(data["recording"])
            else:  # recording was off when the checkpoint was written
                self.recorder.resumed_blind()
        if self.novelty is not None and data.get("novelty"):
            self.novelty.load_state_dict(data["novelty"])
        self.epoch, self.steps, self.cycle_id = data["epoch"], data["steps"], data["cycle_id"]
        self.best_return, self.best_epoch = data["best_return"], data.get("best_epoch")
        self.episode_faints.copy_(data["episode_faints"])
        self.partial.copy_(data.get("partial_episodes", torch.zeros_like(self.partial)))
        self.finished.load_state_dict(data["finished_episodes"])
