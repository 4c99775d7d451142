"""PPO over the batched town: `train(cfg, output_dir)`.

Reads in the order it runs (CleanRL): set-up and seeding, resume, then per epoch the data
(a rollout of `rollout_ticks` over `num_envs` envs, or a chunk of captured samples), GAE, the
PPO update, an epoch record, checkpoints, the curriculum, and evaluation. `train.source`:
`rollout` (online), `replay` (captures only) or `mixed` (rollout and replay epochs alternate).
Leaves in the run directory: `telemetry/ppo.jsonl`, `checkpoints/{latest,best,epoch_N}.pt`,
`evaluation.json` and `evaluation_history.jsonl`.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from townlet.config.schema import AnnealStageConfig, TownletConfig
from townlet.curriculum import Curriculum
from townlet.policy.anneal import AnnealSchedule
from townlet.policy.checkpoint import (
    CheckpointError,
    check_compatible,
    load_checkpoint,
    save_checkpoint,
)
from townlet.policy.episode_stats import FinishedEpisodes
from townlet.policy.evaluate import evaluate
from townlet.policy.imitation import (
    accuracy,
    clone_epoch,
    demonstrate,
    demonstrations_from_captures,
)
from townlet.policy.network import ActorCritic
from townlet.policy.ppo import Batch, behaviour_kl, ppo_update
from townlet.policy.replay import ReplayStream, discover, load_chunk
from townlet.policy.rollout import Rollout, compute_gae
from townlet.policy.telemetry_record import (
    bc_record,
    epoch_record,
    meal_types,
    rollout_events,
)
from townlet.recording import RecordingIndex
from townlet.recording.recorder import EpisodeRecorder
from townlet.scenarios.build import typed
from townlet.telemetry import TelemetryWriter
from townlet.telemetry.plot import TRAINING_KEYS, plot
from townlet.telemetry.reader import truncate_after_epoch
from townlet.tracking import Tracker
from townlet.tracking.names import grouped
from townlet.util.atomic import atomic_write_json
from townlet.util.hashing import config_hash
from townlet.world import World
from townlet.world.constants import NUM_ACTIONS

CHECKPOINT_NAMES = ("meters", "actions", "features", "dense_channels", "affordance_types", "agents")
SOURCES = ("rollout", "replay", "mixed", "bc")
log = logging.getLogger(__name__)
ACCURACY_SAMPLES = 8192  # demonstrated states a PPO epoch's BC accuracy is measured on
KL_CHUNK = 8192


@dataclass
class TrainResult:
    output_dir: Path
    epochs: int
    steps: int
    evaluation: dict[str, Any]
    best_return: float | None
    best_epoch: int | None = None
    stage: int = 0
    seconds: float = 0.0
    recordings: int | None = None

    @property
    def objective(self) -> float:
        """What a sweeper maximises: the deterministic policy's evaluation return."""
        return self.evaluation["policy_deterministic"]["return_mean"]


@dataclass
class EpochData:
    """What one epoch's data source produced, ready for the update and the record."""

    mode: str
    batch: Batch
    rewards: torch.Tensor
    entropy: torch.Tensor
    events: dict[str, float]
    agent_steps: int
    acting_sec: float
    new_cycle: bool
    finished_returns: list[float] = field(default_factory=list)
    finished_lengths: list[float] = field(default_factory=list)
    survival: list[float] = field(default_factory=list)
    baseline: dict[str, float] | None = None


def _resume_path(resume: Any, output_dir: Path) -> Path | None:
    if resume is False or resume is None or str(resume).lower() in ("false", "none", ""):
        return None
    if resume is True or str(resume).lower() == "true":
        path = output_dir / "checkpoints" / "latest.pt"
        if not path.exists():
            raise CheckpointError(
                f"train.resume=true: no checkpoint at {path}; pass train.resume=PATH or "
                "hydra.run.dir=<the killed run's directory>"
            )
        return path
    return Path(str(resume))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; `epoch` is the last epoch whose checkpoint was written."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"interrupted at epoch {epoch}")
        self.epoch = epoch


class Trainer:
    def __init__(
        self, config: TownletConfig, output_dir: Path, tracker: Tracker | None = None
    ) -> None:
        self.tracker = tracker or Tracker()
        ppo, opts = config.ppo, config.train
        if opts.source not in SOURCES:
            raise ValueError(f"train.source: '{opts.source}' is not one of {', '.join(SOURCES)}")
        if opts.source in ("replay", "mixed") and not opts.capture_dir:
            raise ValueError(
                f"train.source={opts.source} needs train.capture_dir=<capture run dir>"
            )
        self.config, self.output_dir = config, Path(output_dir)

        # --- seeding and set-up
        if opts.threads > 0:
            torch.set_num_threads(opts.threads)
        torch.manual_seed(config.seed)
        self.world = World(
            config.world,
            config.scenario,
            num_envs=ppo.num_envs,
            seed=config.seed,
            auto_reset=True,
            spread_starts=True,
        )
        layout, names = self.world.layout, self.world.names
        self.e, self.a = ppo.num_envs, layout.num_agents
        self.n, self.window, self.num_features = self.e * self.a, layout.window, len(names.features)
        self.net = ActorCritic(
            self.window, self.num_features, NUM_ACTIONS, ppo.hidden_size, ppo.embedding_dim
        )
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=ppo.learning_rate, eps=1e-5)
        self.act_generator = torch.Generator().manual_seed(config.seed + 1)
        self.shuffle_generator = torch.Generator().manual_seed(config.seed + 2)
        self.curriculum = Curriculum(config.curriculum)
        self.curriculum.apply(self.world)
        self.world.reset()
        self.replay = None
        if opts.source in ("replay", "mixed") and not opts.anneal:
            self.replay = ReplayStream(
                discover(Path(opts.capture_dir), self.world), opts.replay_chunk, config.seed + 3
            )
        self.num_epochs = max(1, math.ceil(opts.total_ticks / ppo.rollout_ticks))
        stages = list(opts.anneal) or (
            [AnnealStageConfig(mode="bc", epochs=self.num_epochs)] if opts.source == "bc" else []
        )
        self.schedule = AnnealSchedule(stages, opts.anneal_threshold) if stages else None
        self.demos = self.accuracy_demos = None
        if self.schedule is not None:
            self.num_epochs = self.schedule.max_epochs
            self.demos = (
                demonstrations_from_captures(Path(opts.bc.capture_dir), self.world)
                if opts.bc.capture_dir
                else demonstrate(config, config.seed + 4)
            )
            picked = torch.randperm(
                len(self.demos), generator=torch.Generator().manual_seed(config.seed + 5)
            )[:ACCURACY_SAMPLES]
            self.accuracy_demos = self.demos.take(picked)
        self.bc_optimizer = torch.optim.Adam(
            self.net.parameters(), lr=opts.bc.learning_rate, eps=1e-5
        )
        self.bc_generator = torch.Generator().manual_seed(config.seed + 6)
        self.checkpoint_names = {k: list(getattr(names, k)) for k in CHECKPOINT_NAMES}
        self.meal_types = meal_types(config.world, names.affordance_types)
        self.recorder = None
        if config.recording.enabled:
            self.recorder = EpisodeRecorder(
                config.recording,
                self.output_dir,
                self.world,
                run_id=self.output_dir.name,
                seed=config.seed,
                config_hash=config_hash(config),
            )
            self._progress_column = names.features.index("interaction_progress")
        telemetry_path = self.output_dir / "telemetry" / "ppo.jsonl"
        self.start_epoch, self.steps, self.cycle_id, self.best_return, offset = 0, 0, 0, None, 0
        self.best_epoch: int | None = None
        self.finished = FinishedEpisodes(opts.return_window)
        self.episode_faints = torch.zeros(self.e)

        # --- resume
        resume_from = _resume_path(opts.resume, self.output_dir)
        if resume_from is not None:
            offset = self._restore(resume_from)
            truncate_after_epoch(telemetry_path, self.start_epoch)
        self.writer = TelemetryWriter(
            telemetry_path, config.telemetry.log_frequency, config.telemetry.max_entries, offset
        )
        self.buffers = Rollout.allocate(
            ppo.rollout_ticks, self.n, self.window, self.num_features, NUM_ACTIONS
        )
        self.obs = self.world.observe()
        self.epochs_done = self.start_epoch

    # ------------------------------------------------------------------ the run
    def run(self) -> TrainResult:
        try:
            return self._run()
        except KeyboardInterrupt:
            raise TrainingInterrupted(self.epochs_done) from None
        finally:
            if self.recorder is not None:
                for problem in self.recorder.close():
                    print(f"warning: {problem}", file=sys.stderr)

    def _run(self) -> TrainResult:
        opts = self.config.train
        show = sys.stderr.isatty() if opts.progress is None else opts.progress
        bar = tqdm(
            total=self.num_epochs,
            initial=self.start_epoch,
            disable=not show,
            unit="epoch",
            dynamic_ncols=True,
        )
        run_start = last_line = time.perf_counter()
        if self.start_epoch >= self.num_epochs:
            log.info("the run is complete (%d epochs); evaluating it again", self.start_epoch)
        for epoch in range(self.start_epoch + 1, self.num_epochs + 1):
            if self.schedule is not None and self.schedule.finished:
                break  # a failed BC gate skipped the PPO phases after it
            record = self._epoch(epoch)
            self.epochs_done = epoch
            now = time.perf_counter()
            if not show and now - last_line >= opts.progress_every_sec:
                log.info(
                    progress_line(
                        record, epoch, self.num_epochs, now - run_start, epoch - self.start_epoch
                    )
                )
                last_line = now
            if opts.eval_every > 0 and epoch % opts.eval_every == 0 and epoch < self.num_epochs:
                self._evaluate(epoch, time.perf_counter() - run_start)
            bar.update(1)
            bar.set_postfix(
                sps=f"{record.get('steps_per_sec', 0.0):,.0f}",
                ret=f"{record.get('episodic_return', float('nan')):.2f}",
                stage=self.curriculum.stage,
                mode=record["data_mode"],
            )
        bar.close()
        evaluation = self._evaluate(self.epochs_done, time.perf_counter() - run_start)
        if self.writer.path.exists():  # telemetry/ppo.png: the agents, the learner, evaluations
            history = self.output_dir / "evaluation_history.jsonl"
            rows = [json.loads(line) for line in history.read_text().splitlines() if line]
            plot(self.writer.path, keys=TRAINING_KEYS, skip_missing=True, evaluation=rows)
        recordings = self._track_results(evaluation)
        return TrainResult(
            self.output_dir,
            self.epochs_done,
            self.steps,
            evaluation,
            self.best_return,
            self.best_epoch,
            self.curriculum.stage,
            time.perf_counter() - run_start,
            recordings,
        )

    def _track_results(self, evaluation: dict[str, Any]) -> int | None:
        """Evaluation metrics and the run's artifacts, for the tracker."""
        flat = grouped({f"eval.{key}": value for key, value in _flatten(evaluation).items()})
        self.tracker.log_metrics(flat, step=self.epochs_done)
        self.tracker.log_artifact(self.output_dir / "telemetry", "telemetry")
        self.tracker.log_artifact(self.output_dir / "evaluation.json")
        self.tracker.log_artifact(self.output_dir / "evaluation_history.jsonl")
        if self.recorder is not None:
            self.recorder.close()
            summary = self.output_dir / "recordings_summary.json"
            rows = RecordingIndex.for_run(self.output_dir, create=False).list(limit=None)
            by_reason: dict[str, int] = {}
            for row in rows:
                for reason in row["recording_reasons"]:
                    by_reason[reason] = by_reason.get(reason, 0) + 1
            atomic_write_json(
                summary,
                {
                    "recordings": len(rows),
                    "by_reason": by_reason,
                    "episodes": [r["episode_id"] for r in rows],
                },
            )
            self.tracker.log_artifact(summary)
            return len(rows)
        return None

    def _mode(self, epoch: int) -> str:
        source = self.config.train.source
        if source == "mixed":
            return "rollout" if epoch % 2 == 1 else "replay"
        return source

    def _epoch(self, epoch: int) -> dict[str, Any]:
        if self.schedule is not None and self.schedule.mode == "bc":
            return self._bc_epoch(epoch)
        ppo = self.config.ppo
        epoch_start = time.perf_counter()
        if self.schedule is not None:
            progress = self.schedule.ppo_done / max(self.schedule.ppo_epochs, 1)
        else:
            progress = (epoch - 1) / self.num_epochs
        lr = ppo.learning_rate * (1.0 - progress) if ppo.anneal_lr else ppo.learning_rate
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        stage = self.curriculum.stage
        data = self._rollout() if self._mode(epoch) == "rollout" else self._replay_chunk()

        # --- PPO update
        update_start = time.perf_counter()
        batch = data.batch
        stats = (
            ppo_update(self.net, self.optimizer, batch, ppo, self.shuffle_generator)
            if len(batch)
            else {}
        )
        kl = self._final_kl(batch)
        update_sec = time.perf_counter() - update_start
        self.steps += data.agent_steps
        self.cycle_id += int(data.new_cycle)
        self.curriculum.record(data.survival)
        self.finished.add(data.finished_returns, data.finished_lengths, data.survival)
        record = epoch_record(
            epoch=epoch,
            stats=stats,
            kl=kl,
            lr=lr,
            steps=self.steps,
            cycle_id=self.cycle_id,
            duration=time.perf_counter() - epoch_start,
            rollout_sec=data.acting_sec,
            update_sec=update_sec,
            batch=batch,
            flat_rewards=data.rewards,
            entropy=data.entropy,
            events=data.events,
            rollout_ticks=ppo.rollout_ticks,
            episode_stats=self.finished.record(len(data.finished_returns)),
            stage=stage,
            agent_steps=data.agent_steps,
            data_mode=data.mode,
            baseline=data.baseline,
        )
        if self.recorder is not None:
            record.update(self.recorder.stats())
        if self.schedule is not None:
            record.update(self._anneal_fields("ppo", accuracy(self.net, self.accuracy_demos)))
            self.schedule.ppo_epoch_done()
        if self.writer.should_log(epoch):
            self.writer.write(record)
            self.tracker.log_metrics(grouped(record), step=epoch)

        # --- checkpoints: latest every epoch, best by episodic return, periodic
        improved = bool(data.finished_returns) and (
            self.best_return is None or record["episodic_return"] > self.best_return
        )
        if improved:
            self.best_return, self.best_epoch = record["episodic_return"], epoch
        if self.curriculum.maybe_advance(self.world, epoch) and self.recorder is not None:
            self.recorder.stage_changed(self.curriculum.stage)
        self._save(epoch, improved)
        return record

    def _anneal_fields(self, stage: str, bc_accuracy: float, **extra: Any) -> dict[str, Any]:
        threshold = self.schedule.threshold
        return {
            "anneal_cycle": self.schedule.cycle,
            "anneal_stage": stage,
            "anneal_dataset": self.demos.label,
            "anneal_bc_accuracy": bc_accuracy,
            "anneal_bc_threshold": threshold,
            "anneal_bc_passed": bc_accuracy >= threshold,
            **extra,
        }

    def _bc_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass of behaviour cloning over the demonstrations, then the accuracy gate."""
        opts, start = self.config.train, time.perf_counter()
        cycle = self.schedule.cycle
        stats = clone_epoch(
            self.net,
            self.bc_optimizer,
            self.demos,
            opts.bc.minibatch,
            opts.bc.value_coef,
            self.bc_generator,
            self.config.ppo.max_grad_norm,
        )
        score = accuracy(self.net, self.demos)
        gate = self.schedule.bc_epoch_done(score, self.net.state_dict())
        if gate.rolled_back:
            self.net.load_state_dict(self.schedule.gate_weights)
        self.cycle_id += 1
        record = bc_record(
            epoch=epoch,
            stats=stats,
            lr=opts.bc.learning_rate,
            steps=self.steps,
            cycle_id=self.cycle_id,
            duration=time.perf_counter() - start,
            transitions=len(self.demos),
            events=self.demos.events,
            rollout_ticks=self.config.ppo.rollout_ticks,
            episode_stats=self.finished.record(0),
            stage=self.curriculum.stage,
        )
        record.update(self._anneal_fields("bc", score, anneal_rolled_back=gate.rolled_back))
        record["anneal_cycle"] = cycle
        if self.writer.should_log(epoch):
            self.writer.write(record)
            self.tracker.log_metrics(grouped(record), step=epoch)
        self._save(epoch, improved=False)
        return record

    # ------------------------------------------------------------------ data sources
    def _rollout(self) -> EpochData:
        """Act `rollout_ticks` ticks in every env with the current policy."""
        start = time.perf_counter()
        ppo, world, buffers, net = self.config.ppo, self.world, self.buffers, self.net
        n, e, a, window, nf = self.n, self.e, self.a, self.window, self.num_features
        finished_returns, finished_lengths, survival = [], [], []
        obs = self.obs
        with torch.no_grad():
            for t in range(ppo.rollout_ticks):
                codes = obs.map_codes.reshape(n, window, window)
                features = obs.features.reshape(n, nf)
                masks = obs.action_mask.reshape(n, NUM_ACTIONS)
                action, logprob, entropy, value, logits = net.get_action_and_value(
                    codes, features, masks, generator=self.act_generator
                )
                buffers.codes[t] = codes
                buffers.features[t] = features
                buffers.masks[t] = masks
                buffers.actions[t] = action
                buffers.logprobs[t] = logprob
                buffers.logits[t] = logits
                buffers.entropy[t] = entropy
                buffers.values[t] = value
                buffers.valid[t] = world.state.alive.reshape(n)
                if self.recorder is not None:
                    state = world.state
                    env0 = {
                        "positions": world.layout.xy_of(state.pos[0]),
                        "meters": state.meters[0],
                        "actions": action[:a],
                        "interaction_progress": features[:a, self._progress_column],
                        "time_of_day": world.time_of_day()[0],
                        "queued": state.queued[0],
                        "using": state.using[0],
                        "action_probs": torch.softmax(logits[:a], -1),
                        "values": value[:a],
                    }
                result = world.step(action.view(e, a))
                if self.recorder is not None:
                    self.recorder.tap(
                        **env0,
                        rewards=result.reward[0],
                        dones=result.terminated[0] | result.truncated[0],
                    )
                    if bool(result.env_done[0]):
                        self.recorder.end_episode(
                            int(world.state.episode[0]) - 1,
                            self.curriculum.stage,
                            result.episode_return[0],
                        )
                buffers.rewards[t] = result.reward.reshape(n)
                buffers.dones[t] = (result.terminated | result.truncated).reshape(n)
                ev = result.events
                buffers.contention[t] = ev.contention.reshape(n)
                buffers.intensity[t] = ev.contention_intensity.reshape(n)
                buffers.completed[t] = ev.completed.reshape(n)
                buffers.shift_event[t] = ev.shift_event.reshape(n)
                buffers.fainted[t] = ev.fainted.reshape(n)
                self.episode_faints += ev.fainted.sum(-1)
                if bool(result.env_done.any()):
                    done = result.env_done
                    active = world._fresh.alive.sum(-1).clamp(min=1).float()
                    finished_returns += (result.episode_return.sum(-1) / active)[done].tolist()
                    finished_lengths += result.episode_length[done].tolist()
                    survival += (1.0 - self.episode_faints / active)[done].tolist()
                    self.episode_faints[done] = 0
                obs = result.obs
            next_value = net.get_value(
                obs.map_codes.reshape(n, window, window), obs.features.reshape(n, nf)
            )
        self.obs = obs
        acting_sec = time.perf_counter() - start

        # --- advantages (GAE) and the flat batch of valid transitions (b_ in CleanRL)
        advantages, returns = compute_gae(
            buffers.rewards, buffers.values, buffers.dones, next_value, ppo.gamma, ppo.gae_lambda
        )
        index = buffers.valid.reshape(-1).nonzero().squeeze(1)

        def flat(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(-1, *x.shape[2:])[index]

        batch = Batch(
            codes=flat(buffers.codes),
            features=flat(buffers.features),
            masks=flat(buffers.masks),
            actions=flat(buffers.actions),
            logprobs=flat(buffers.logprobs),
            logits=flat(buffers.logits),
            values=flat(buffers.values),
            advantages=flat(advantages),
            returns=flat(returns),
        )
        return EpochData(
            mode="rollout",
            batch=batch,
            rewards=flat(buffers.rewards),
            entropy=flat(buffers.entropy),
            events=rollout_events(buffers, a, world.names, self.meal_types),
            agent_steps=ppo.rollout_ticks * n,
            acting_sec=acting_sec,
            new_cycle=True,
            finished_returns=finished_returns,
            finished_lengths=finished_lengths,
            survival=survival,
        )

    def _replay_chunk(self) -> EpochData:
        """The next chunk of captured samples, with advantages from the current critic."""
        start = time.perf_counter()
        refs, new_cycle = self.replay.next_chunk()
        chunk = load_chunk(
            refs, self.world, self.net, self.config.ppo.gamma, self.config.ppo.gae_lambda
        )
        return EpochData(
            mode="replay",
            batch=chunk.batch,
            rewards=chunk.rewards,
            entropy=chunk.entropy,
            events=chunk.events,
            agent_steps=len(chunk.batch),
            acting_sec=time.perf_counter() - start,
            new_cycle=new_cycle,
            baseline=chunk.baseline,
        )

    # ------------------------------------------------------------------ helpers
    def _final_kl(self, batch: Batch) -> float:
        """KL(behaviour || updated policy) over the epoch's transitions, after the update."""
        if not len(batch):
            return 0.0
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(batch), KL_CHUNK):
                part = batch.take(torch.arange(i, min(i + KL_CHUNK, len(batch))))
                _, logprob, _, _, logits = self.net.get_action_and_value(
                    part.codes, part.features, part.masks, action=part.actions
                )
                total += float(behaviour_kl(part, logits, logprob).sum())
        return total / len(batch)

    def _save(self, epoch: int, improved: bool) -> None:
        payload = {
            "epoch": epoch,
            "steps": self.steps,
            "cycle_id": self.cycle_id,
            "num_epochs": self.num_epochs,
            "num_envs": self.e,
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
            "telemetry_offset": self.writer.offset,
            "best_return": self.best_return,
            "best_epoch": self.best_epoch,
            "finished_episodes": self.finished.state_dict(),
            "episode_faints": self.episode_faints.clone(),
            "names": self.checkpoint_names,
            "network_shape": self.net.shape,
            "scenario": self.config.scenario.name,
            "config": OmegaConf.to_yaml(OmegaConf.structured(self.config)),
        }
        if self.recorder is not None:
            self.recorder.flush()  # what ended before this checkpoint is on disk when it is
        checkpoints = self.output_dir / "checkpoints"
        save_checkpoint(checkpoints / "latest.pt", payload)
        if improved:
            save_checkpoint(checkpoints / "best.pt", payload)
        every = self.config.train.checkpoint_every
        if every > 0 and epoch % every == 0:
            save_checkpoint(checkpoints / f"epoch_{epoch:06d}.pt", payload)

    def _restore(self, path: Path) -> int:
        """Load everything a checkpoint holds; return the telemetry offset."""
        data = load_checkpoint(path)
        check_compatible(path, data, self.checkpoint_names, self.net.shape)
        if data["num_envs"] != self.e:
            raise CheckpointError(
                f"{path}: trained with ppo.num_envs={data['num_envs']}; this config has "
                f"{self.e} (pass ppo.num_envs={data['num_envs']})"
            )
        if data["epoch"] > self.num_epochs:  # a larger train.total_ticks extends a run
            raise CheckpointError(
                f"{path}: already trained {data['epoch']} epochs, more than the "
                f"{self.num_epochs} train.total_ticks={self.config.train.total_ticks} asks for"
            )
        self.net.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.act_generator.set_state(data["generators"]["action"])
        self.shuffle_generator.set_state(data["generators"]["shuffle"])
        torch.set_rng_state(data["generators"]["torch"])
        self.world.restore(data["world"])
        self.curriculum.load_state_dict(data["curriculum"])
        if self.replay is not None and data.get("replay"):
            self.replay.load_state_dict(data["replay"])
        if self.schedule is not None and data.get("anneal"):
            self.schedule.load_state_dict(data["anneal"])
        if data.get("bc_optimizer"):
            self.bc_optimizer.load_state_dict(data["bc_optimizer"])
        if self.recorder is not None:
            if data.get("recording"):  # the policy's history and env 0's episode in progress
                self.recorder.load_state_dict(data["recording"])
            else:  # recording was off when the checkpoint was written: only a tail is seen
                self.recorder.partial = True
        self.start_epoch, self.steps, self.cycle_id = data["epoch"], data["steps"], data["cycle_id"]
        self.best_return, self.episode_faints = data["best_return"], data["episode_faints"]
        self.best_epoch = data.get("best_epoch")
        self.finished.load_state_dict(data["finished_episodes"])
        return data["telemetry_offset"]

    def _evaluate(self, epoch: int, elapsed: float) -> dict[str, Any]:
        """Evaluate; write evaluation.json (latest) and append to evaluation_history.jsonl."""
        config = self.config
        evaluation = evaluate(config, self.net, config.train.eval_episodes, config.seed + 1000)
        entry = {
            "epoch": epoch,
            "steps": self.steps,
            "elapsed_sec": round(elapsed, 3),
            **evaluation,
        }
        atomic_write_json(self.output_dir / "evaluation.json", entry)
        with open(self.output_dir / "evaluation_history.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        return evaluation


def train(
    cfg: DictConfig | TownletConfig, output_dir: Path, tracker: Tracker | None = None
) -> TrainResult:
    config = typed(cfg) if isinstance(cfg, DictConfig) else cfg
    return Trainer(config, Path(output_dir), tracker).run()


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested evaluation numbers as dotted metric names (None and empty parts left out)."""
    flat: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


def progress_line(record: dict[str, Any], epoch: int, total: int, elapsed: float, done: int) -> str:
    """One plain line for logs without a terminal: epoch, steps, speed, return, time left."""
    per_epoch = elapsed / max(done, 1)
    left = int(per_epoch * (total - epoch))
    ret = record.get("episodic_return")
    parts = [
        f"epoch {epoch}/{total} ({record['data_mode']})",
        f"steps {record['steps']:,}",
        f"{record.get('steps_per_sec', 0.0):,.0f} steps/s",
        "return " + ("-" if ret is None else f"{ret:.3f}"),
        f"eta {left // 60}m{left % 60:02d}s",
    ]
    if "anneal_bc_accuracy" in record:
        parts.append(f"bc accuracy {record['anneal_bc_accuracy']:.3f}")
    return ", ".join(parts)


def describe(result: TrainResult, command: str = "python experiments/train.py") -> str:
    """The end of a run: where it is, what it left, how the policy did and what to run next."""
    from townlet.policy.evaluate import format_table

    ev, run = result.evaluation, result.output_dir
    scripted = ev.get("scripted")
    policy, sampled = ev["policy_deterministic"], ev["policy_sampled"]
    files = ["checkpoints/latest.pt"]
    if (run / "checkpoints" / "best.pt").exists():
        files.append(f"checkpoints/best.pt (epoch {result.best_epoch})")
    files += [f for f in ("telemetry/ppo.jsonl", "telemetry/ppo.png") if (run / f).exists()]
    files.append("evaluation.json")
    if result.recordings is not None:
        files.append(f"{result.recordings} recorded episode(s)")
    rows = [
        f"trained {result.epochs} epochs ({result.steps:,} agent-steps) in "
        f"{result.seconds:.0f} s -> {run}",
        "files: " + ", ".join(files),
        f"curriculum stage reached: {result.stage}",
        "",
        format_table(ev),
        "",
        f"evaluation return per agent-episode: policy {policy['return_mean']:.3f} "
        f"(sampled {sampled['return_mean']:.3f}), random {ev['random']['return_mean']:.3f}"
        + (f", scripted {scripted['return_mean']:.3f}" if scripted else ""),
        "policy behaviour: " + behaviour_line(policy["behaviour"]),
    ]
    if policy["return_mean"] < ev["random"]["return_mean"]:
        rows.append("warning: the trained policy scores below a random one; train longer")
    rows += [
        "next:",
        f"  townlet telemetry summary {run / 'telemetry' / 'ppo.jsonl'}",
        f"  townlet evaluate {run / 'checkpoints' / 'latest.pt'}",
        f"  {command.replace('train', 'serve')} run_dir={run}"
        + ("" if result.recordings else "   (live policy; add recording=periodic to record)"),
        "  mlflow ui --backend-store-uri sqlite:///mlruns.db   (tracking=mlflow)",
        f"  {command} hydra.run.dir={run} train.resume=true train.total_ticks=<more>",
    ]
    return "\n".join(rows)


def behaviour_line(behaviour: dict[str, Any]) -> str:
    """On time, faints and completions per agent-day in one line."""
    on_time = behaviour["on_time_rate"]
    done = behaviour["completions_per_agent_day"]
    parts = [
        "on time " + ("-" if on_time is None else f"{on_time:.0%}"),
        f"faints/agent-day {behaviour['faints_per_agent_day']:.2f}",
        *(f"{kind} {count:.2f}" for kind, count in done.items() if count > 0),
    ]
    return ", ".join(parts) + " (completions per agent-day)"
