"""PPO over the batched town: the `Trainer`, the algorithm only.

Reads in the order it runs (CleanRL): set-up and seeding, resume, then per epoch the data
(a rollout of `rollout_ticks` over `num_envs` envs, or a chunk of captured samples), GAE, the
PPO update, the epoch record, checkpoints, the curriculum, and evaluation. `train.source`:
`rollout` (online), `replay` (captures only), `mixed` (rollout and replay epochs alternate) or
`bc` (behaviour cloning only); `train.anneal` schedules BC and PPO phases.
Plumbing lives elsewhere: `train.train` wires tracking, plotting and the recordings summary
around this class; `run_report` prints progress and the end-of-run summary; `TrainState` is
what checkpoints hold.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from townlet.config.hashing import config_hash
from townlet.config.schema import AnnealStageConfig, TownletConfig
from townlet.curriculum import Curriculum
from townlet.policy.anneal import AnnealSchedule
from townlet.policy.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from townlet.policy.choosers import mix
from townlet.policy.episode_stats import FinishedEpisodes
from townlet.policy.epoch import EpochData, UpdateResult
from townlet.policy.evaluate import baseline_reports, evaluate
from townlet.policy.imitation import (
    accuracy,
    clone_epoch,
    demonstrate,
    demonstrations_from_captures,
)
from townlet.policy.network import ActorCritic
from townlet.policy.novelty import VisitCounts, beta_at
from townlet.policy.population import Background, describe, focal_agents, source_names
from townlet.policy.ppo import Anchor, Batch, behaviour_kl, ppo_update
from townlet.policy.precision import native_bf16, precision_scope
from townlet.policy.replay import ReplayStream, discover, load_chunk
from townlet.policy.rollout import Rollout, compute_gae
from townlet.policy.run_report import TrainResult, progress_line
from townlet.policy.selection import Selection
from townlet.policy.telemetry_record import bc_record, epoch_record, meal_types, rollout_events
from townlet.policy.train_state import TrainState
from townlet.policy.week_record import week_figures
from townlet.recording.frame import frame_of, outcome_of
from townlet.recording.recorder import EpisodeRecorder
from townlet.telemetry import TelemetryWriter
from townlet.telemetry.reader import truncate_after_epoch
from townlet.util.atomic import atomic_write_json
from townlet.util.phases import PhaseClock
from townlet.util.run_dir import RunDir
from townlet.world import World
from townlet.world.constants import NUM_ACTIONS
from townlet.world.events import store_tick

log = logging.getLogger(__name__)
ACCURACY_SAMPLES = 8192  # demonstrated states a PPO epoch's BC accuracy is measured on
KL_CHUNK = 8192

RecordListener = Callable[[int, dict[str, Any]], None]


def _resume_path(resume: Any, output_dir: Path) -> Path | None:
    if resume is False or resume is None or str(resume).lower() in ("false", "none", ""):
        return None
    if resume is True or str(resume).lower() == "true":
        path = RunDir.of(output_dir).latest
        if not path.exists():
            raise CheckpointError(
                f"train.resume=true: no checkpoint at {path}; pass train.resume=PATH or "
                "hydra.run.dir=<the killed run's directory>"
            )
        return path
    return Path(str(resume))


@dataclass
class _EndedEpisodes:
    """The figures of the episodes a rollout saw end (lists, one entry per env-episode)."""

    returns: list[float] = field(default_factory=list)
    lengths: list[float] = field(default_factory=list)
    survival: list[float] = field(default_factory=list)
    background: list[float] = field(default_factory=list)  # under a population


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; `epoch` is the last epoch whose checkpoint was written."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"interrupted at epoch {epoch}")
        self.epoch = epoch


class Trainer:
    """`on_record(epoch, record)` hears every epoch record the telemetry writer keeps;
    `on_evaluation(epoch, return)` every periodic evaluation (and may stop the run by raising)."""

    def __init__(
        self,
        config: TownletConfig,
        output_dir: Path,
        on_record: RecordListener | None = None,
        on_evaluation: Callable[[int, float], None] | None = None,
        links: dict[str, str] | None = None,
    ) -> None:
        ppo, opts = config.ppo, config.train
        self.config, self.output_dir = config, Path(output_dir)
        self.run_dir = RunDir.of(output_dir)
        self.on_record = on_record or (lambda epoch, record: None)
        # hears each periodic evaluation's return; may raise to stop the run (Optuna pruning)
        self.on_evaluation = on_evaluation or (lambda epoch, value: None)
        # Once: converting the config is ~0.6 s, which at every epoch's checkpoint was a third
        # of the default run's wall time.
        self.config_yaml = OmegaConf.to_yaml(OmegaConf.structured(config))

        # --- seeding and set-up, in this order (each draws from the seeded generators)
        if opts.threads > 0:
            torch.set_num_threads(opts.threads)
        torch.manual_seed(config.seed)
        world = self.world = self._make_world()
        self._make_learner()
        self.curriculum = Curriculum(config.curriculum)
        self.curriculum.apply(world)
        world.reset()
        self.phases = world.phases = PhaseClock(opts.profile, self.device)
        replay = self._make_sources()
        self.recorder = self._make_recorder(links)
        self.state = TrainState(
            net=self.net,
            optimizer=self.optimizer,
            bc_optimizer=self.bc_optimizer,
            act_generator=self.act_generator,
            shuffle_generator=self.shuffle_generator,
            world=world,
            curriculum=self.curriculum,
            finished=FinishedEpisodes(opts.return_window),
            episode_faints=torch.zeros(self.e, device=self.device),
            partial=self._stagger(world),
            replay=replay,
            schedule=self.schedule,
            recorder=self.recorder,
            novelty=(
                VisitCounts(world.layout.sink_cell + 1, world.layout.ticks_per_day, self.device)
                if ppo.novelty_bonus > 0
                else None
            ),
        )
        self._novelty_beta = 0.0  # the exploration bonus's weight this epoch (set per epoch)
        self._rent_before: torch.Tensor | None = None  # the rent potential before a tick
        self._resume_or_start()

    def _make_world(self) -> World:
        """The training world (auto-reset, spread starts) and the sizes read from it."""
        ppo = self.config.ppo
        world = World(
            self.config.world,
            self.config.scenario,
            num_envs=ppo.num_envs,
            seed=self.config.seed,
            auto_reset=True,
            spread_starts=True,
            keep_final_obs=ppo.bootstrap_truncated,
        )
        layout, names = world.layout, world.names
        self.e, self.a = ppo.num_envs, layout.num_agents
        self.n, self.window, self.num_features = self.e * self.a, layout.window, len(names.features)
        # The policy, its buffers and its sampling generator live where the world does.
        self.device = world.device
        self.meal_types = meal_types(layout)
        self.week = world.calendar.observed  # multi-day: per-weekday figures in each record
        return world

    def _make_learner(self) -> None:
        """The network, its two optimizers and the generators that sample and shuffle."""
        config, ppo, device = self.config, self.config.ppo, self.device
        if ppo.precision == "bf16" and not native_bf16(device):
            log.warning(
                "ppo.precision=bf16 on %s without native bf16: torch emulates it, expect the "
                "update to run several times slower than fp32",
                device,
            )
        self.net = ActorCritic(
            self.window, self.num_features, NUM_ACTIONS, ppo.hidden_size, ppo.embedding_dim
        ).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=ppo.learning_rate, eps=1e-5)
        self.act_generator = torch.Generator(device=device).manual_seed(config.seed + 1)
        self.shuffle_generator = torch.Generator().manual_seed(config.seed + 2)
        self.bc_optimizer = torch.optim.Adam(
            self.net.parameters(), lr=config.train.bc.learning_rate, eps=1e-5
        )
        self.bc_generator = torch.Generator().manual_seed(config.seed + 6)

    def _make_sources(self) -> ReplayStream | None:
        """Who acts beside the learner, the epochs, the anneal schedule's demonstrations and
        the captures replayed (returned)."""
        config, ppo, opts, world = self.config, self.config.ppo, self.config.train, self.world
        # A population's background agents act from their own source and never enter the batch
        self.is_focal = focal_agents(config).to(self.device)
        self.background = (
            Background(world, config, config.seed + 7) if config.population.background else None
        )
        self.focal_rows = self.is_focal.repeat(ppo.num_envs).nonzero().squeeze(1)
        replay = None
        if opts.source in ("replay", "mixed"):
            replay = ReplayStream(
                discover(Path(opts.capture_dir), world), opts.replay_chunk, config.seed + 3
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
                demonstrations_from_captures(Path(opts.bc.capture_dir), world)
                if opts.bc.capture_dir
                else demonstrate(config, config.seed + 4)
            ).to(self.device)
            picked = torch.randperm(
                len(self.demos), generator=torch.Generator().manual_seed(config.seed + 5)
            )[:ACCURACY_SAMPLES]
            self.accuracy_demos = self.demos.take(picked)
        return replay

    def _make_recorder(self, links: dict[str, str] | None) -> EpisodeRecorder | None:
        config = self.config
        if not config.recording.enabled:
            return None
        return EpisodeRecorder(
            config.recording,
            self.output_dir,
            self.world,
            run_id=self.output_dir.name,
            seed=config.seed,
            config_hash=config_hash(config),
            links=links,
            sources=source_names(config) if config.population.background else None,
        )

    def _resume_or_start(self) -> None:
        """Continue from `train.resume`'s checkpoint (its telemetry cut to it) or start anew;
        then the telemetry writer, the rollout buffers and the first observation."""
        config, opts = self.config, self.config.train
        telemetry_path, offset = self.run_dir.telemetry, 0
        resume_from = _resume_path(opts.resume, self.output_dir)
        if resume_from is not None:
            data = load_checkpoint(resume_from)
            self.state.load_state_dict(resume_from, data, self.num_epochs)
            offset = data["telemetry_offset"]
            truncate_after_epoch(telemetry_path, self.state.epoch)
        self.start_epoch = self.state.epoch
        self.selection = Selection.for_run(config, self.run_dir, resumed=resume_from is not None)
        self.writer = TelemetryWriter(
            telemetry_path, config.telemetry.log_frequency, config.telemetry.max_entries, offset
        )
        self.buffers = Rollout.allocate(
            config.ppo.rollout_ticks,
            self.n,
            self.window,
            self.num_features,
            NUM_ACTIONS,
            self.device,
            self.e,
        )
        self.obs = self.world.observe()
        self._baselines: dict | None = None

    # ------------------------------------------------------------------ the run
    def run(self) -> TrainResult:
        """Train to the end of the schedule, evaluate, and close the recorder."""
        try:
            return self._run()
        except KeyboardInterrupt:
            raise TrainingInterrupted(self.state.epoch) from None
        finally:
            if self.recorder is not None:
                for problem in self.recorder.close():
                    print(f"warning: {problem}", file=sys.stderr)

    def _run(self) -> TrainResult:
        opts, state = self.config.train, self.state
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
            now = time.perf_counter()
            if not show and now - last_line >= opts.progress_every_sec:
                done = epoch - self.start_epoch
                log.info(progress_line(record, epoch, self.num_epochs, now - run_start, done))
                last_line = now
            if self.selection is not None and self.selection.due(self._ppo_epochs(epoch), epoch):
                with self.phases.time("evaluation"):
                    self._validate(epoch)
            if opts.eval_every > 0 and epoch % opts.eval_every == 0 and epoch < self.num_epochs:
                with self.phases.time("evaluation"):
                    evaluation = self._evaluate(epoch, time.perf_counter() - run_start)
                self.on_evaluation(epoch, evaluation["policy_deterministic"]["return_mean"])
            bar.update(1)
            bar.set_postfix(
                sps=f"{record.get('steps_per_sec', 0.0):,.0f}",
                ret=f"{record.get('episodic_return', float('nan')):.2f}",
                stage=self.curriculum.stage,
                mode=record["data_mode"],
            )
        bar.close()
        self._select(state.epoch)
        evaluation = self._evaluate(state.epoch, time.perf_counter() - run_start, final=True)
        return TrainResult(
            self.output_dir,
            state.epoch,
            state.steps,
            evaluation,
            state.best_return,
            state.best_epoch,
            self.curriculum.stage,
            time.perf_counter() - run_start,
            selection=self.selection.summary() if self.selection is not None else None,
        )

    def _ppo_epochs(self, epoch: int) -> int:
        """PPO epochs completed by `epoch` (an anneal schedule's BC passes do not count)."""
        return self.schedule.ppo_done if self.schedule is not None else epoch

    def _validate(self, epoch: int) -> None:
        value = self.selection.validate(self.config, self.net, epoch, self._payload())
        log.info(
            "epoch %d: validation return %.3f (best %.3f at epoch %d)",
            epoch,
            value,
            self.selection.best_return,
            self.selection.best_epoch,
        )

    def _select(self, last_epoch: int) -> None:
        """Validate the last weights too, then make the best validated ones the run's policy."""
        if self.selection is None:
            return
        if self._ppo_epochs(last_epoch) > 0 and self.selection.last_validated != last_epoch:
            self._validate(last_epoch)
        if self.selection.restore_best(self.net, last_epoch):
            log.info(
                "the run's policy: epoch %d's weights (%s), the best of %d validations",
                self.selection.best_epoch,
                self.selection.path,
                self.selection.validations,
            )

    def _mode(self, epoch: int) -> str:
        """Where a PPO epoch's data comes from (an anneal schedule's PPO phases included)."""
        source = self.config.train.source
        if source == "mixed":
            return "rollout" if epoch % 2 == 1 else "replay"
        return source

    def _epoch(self, epoch: int) -> dict[str, Any]:
        if self.schedule is not None and self.schedule.mode == "bc":
            return self._bc_epoch(epoch)
        ppo, state = self.config.ppo, self.state
        epoch_start = time.perf_counter()
        if self.schedule is not None:
            progress = self.schedule.ppo_done / max(self.schedule.ppo_epochs, 1)
        else:
            progress = (epoch - 1) / self.num_epochs
        lr = ppo.learning_rate * (1.0 - progress) if ppo.anneal_lr else ppo.learning_rate
        self._novelty_beta = beta_at(ppo.novelty_bonus, ppo.novelty_until, progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        stage = self.curriculum.stage
        data = self._rollout() if self._mode(epoch) == "rollout" else self._replay_chunk()

        # --- PPO update
        update_start = time.perf_counter()
        batch = data.batch
        with self.phases.time("update"):
            stats = (
                ppo_update(
                    self.net, self.optimizer, batch, ppo, state.shuffle_generator, self._anchor()
                )
                if len(batch)
                else {}
            )
        with self.phases.time("kl"):
            kl = self._final_kl(batch)
        update = UpdateResult(stats, kl, lr, time.perf_counter() - update_start)
        state.steps += data.agent_steps
        state.cycle_id += int(data.new_cycle)
        self.curriculum.record(data.survival)
        state.finished.add(
            data.finished_returns, data.finished_lengths, data.survival, data.background_returns
        )
        record = epoch_record(
            data,
            update,
            epoch=epoch,
            steps=state.steps,
            cycle_id=state.cycle_id,
            duration=time.perf_counter() - epoch_start,
            rollout_ticks=ppo.rollout_ticks,
            episode_stats=state.finished.record(len(data.finished_returns)),
            stage=stage,
        )
        if self.recorder is not None:
            # counted once the writer has caught up, so the record does not depend on how fast
            # the disk was (the checkpoint right after waits for it anyway)
            with self.phases.time("recording"):
                self.recorder.flush()
            record.update(self.recorder.stats())
        if self.schedule is not None:
            with self.phases.time("bc"):
                score = accuracy(self.net, self.accuracy_demos)
            record.update(self._anneal_fields("ppo", score))
            self.schedule.ppo_epoch_done()
        self._log(epoch, record)

        # --- checkpoints: latest every epoch, best by episodic return, periodic
        improved = bool(data.finished_returns) and (
            state.best_return is None or record["episodic_return"] > state.best_return
        )
        if improved:
            state.best_return, state.best_epoch = record["episodic_return"], epoch
        if self.curriculum.maybe_advance(self.world, epoch) and self.recorder is not None:
            self.recorder.stage_changed(self.curriculum.stage)
        self._save(epoch, improved)
        return record

    def _anchor(self) -> Anchor | None:
        """The demonstrations PPO is held near in an anneal schedule (`train.bc.ppo_anchor`)."""
        weight = self.config.train.bc.ppo_anchor
        if self.schedule is None or self.demos is None or weight <= 0:
            return None
        return Anchor(self.demos, weight)

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
        opts, state, start = self.config.train, self.state, time.perf_counter()
        cycle = self.schedule.cycle
        with self.phases.time("bc"):
            stats = clone_epoch(
                self.net,
                state.bc_optimizer,
                self.demos,
                opts.bc.minibatch,
                opts.bc.value_coef,
                self.bc_generator,
                self.config.ppo.max_grad_norm,
                self.config.ppo.precision,
            )
            score = accuracy(self.net, self.demos)
        gate = self.schedule.bc_epoch_done(score, self.net.state_dict())
        if gate.rolled_back:
            self.net.load_state_dict(self.schedule.gate_weights)
        state.cycle_id += 1
        record = bc_record(
            epoch=epoch,
            stats=stats,
            lr=opts.bc.learning_rate,
            steps=state.steps,
            cycle_id=state.cycle_id,
            duration=time.perf_counter() - start,
            transitions=len(self.demos),
            events=self.demos.events,
            rollout_ticks=self.config.ppo.rollout_ticks,
            episode_stats=state.finished.record(0),
            stage=self.curriculum.stage,
        )
        record.update(self._anneal_fields("bc", score, anneal_rolled_back=gate.rolled_back))
        record["anneal_cycle"] = cycle
        self._log(epoch, record)
        self._save(epoch, improved=False)
        return record

    def _log(self, epoch: int, record: dict[str, Any]) -> None:
        if self.phases.enabled:  # the wall time since the last record, by phase
            record.update({f"profile_{k}_sec": v for k, v in self.phases.take().items()})
        if self.writer.should_log(epoch):
            self.writer.write(record)
            self.on_record(epoch, record)

    # ------------------------------------------------------------------ data sources
    def _rollout(self) -> EpochData:
        """Act `rollout_ticks` ticks in every env with the current policy."""
        start = time.perf_counter()
        ppo, world, buffers = self.config.ppo, self.world, self.buffers
        recorder, phases = self.recorder, self.phases
        n, window, nf = self.n, self.window, self.num_features
        ended = _EndedEpisodes()
        # what only the advantages see (time-limit bootstrap, shaping, exploration bonus);
        # telemetry keeps the world's rewards
        learner_extra = torch.zeros_like(buffers.rewards)
        obs = self.obs
        self._rent_before = self._rent_potential() if ppo.rent_shaping > 0 else None
        with torch.no_grad(), precision_scope(ppo.precision, self.device):
            for t in range(ppo.rollout_ticks):
                codes = obs.map_codes.reshape(n, window, window)
                features = obs.features.reshape(n, nf)
                masks = obs.action_mask.reshape(n, NUM_ACTIONS)
                with phases.time("policy"):
                    action, logprob, entropy, value, logits = self._act(codes, features, masks)
                if self.background is not None:
                    with phases.time("background"):
                        background = self.background.act(obs)
                        action = mix(action.view(self.e, self.a), background, self.is_focal)
                        action = action.reshape(n)
                with phases.time("buffers"):
                    buffers.codes[t] = codes
                    buffers.features[t] = features
                    buffers.masks[t] = masks
                    buffers.actions[t] = action
                    buffers.logprobs[t] = logprob
                    buffers.logits[t] = logits
                    buffers.entropy[t] = entropy
                    buffers.values[t] = value
                    buffers.valid[t] = (world.state.alive & self.is_focal).reshape(n)
                if recorder is not None:  # env 0's rows, taken before the step moves the world
                    with phases.time("recording"):
                        a = self.a
                        frame = frame_of(world, features[:a], action[:a], logits[:a], value[:a])
                        recorder.before_step()
                with phases.time("world_step"):
                    result = world.step(action.view(self.e, self.a))
                if self.background is not None:
                    with phases.time("background"):
                        self.background.observe(result)
                if recorder is not None:
                    with phases.time("recording"):
                        self._record_tick(frame, result)
                with phases.time("buffers"):
                    buffers.rewards[t] = result.reward.reshape(n)
                    self._add_learner_extra(learner_extra[t], result)
                    self._store_events(t, result)
                    if bool(result.env_done.any()):
                        self._episodes_ended(result, ended)
                    obs = result.obs
            with phases.time("policy"):  # background rows' values are never used
                next_value = self.net.get_value(
                    obs.map_codes.reshape(n, window, window), obs.features.reshape(n, nf)
                )
        self.obs = obs
        acting_sec = time.perf_counter() - start
        with phases.time("gae"):
            batch, rewards, entropy = self._batch(learner_extra, next_value)
        return EpochData(
            mode="rollout",
            batch=batch,
            rewards=rewards,
            entropy=entropy,
            events=self._rollout_events(),
            agent_steps=ppo.rollout_ticks * n,
            acting_sec=acting_sec,
            new_cycle=True,
            finished_returns=ended.returns,
            finished_lengths=ended.lengths,
            survival=ended.survival,
            background_returns=ended.background,
        )

    def _record_tick(self, frame: dict, result) -> None:
        """Env 0's tick to the recorder; its episode closed when it ended."""
        self.recorder.tap(**frame, **outcome_of(result))
        if bool(result.env_done[0]):
            self.recorder.end_episode(
                int(self.world.state.episode[0]) - 1,
                self.curriculum.stage,
                result.episode_return[0],
            )

    def _add_learner_extra(self, extra: torch.Tensor, result) -> None:
        """Add to `extra` (n,), in place, what the advantages' reward gains beyond the world's
        this tick: the time-limit bootstrap, the exploration bonus and the gamma-consistent
        shaping terms."""
        ppo, world, state, n = self.config.ppo, self.world, self.state, self.n
        if result.final_obs is not None:  # a day's end is a time limit, not a death
            extra += self._truncation_bootstrap(result)
        if state.novelty is not None and self._novelty_beta > 0:
            extra += state.novelty.bonus(
                world.state.pos, world.time_of_day(), world.state.alive, self._novelty_beta
            ).reshape(n)
        if ppo.rent_shaping > 0:  # gamma x potential' - potential, 0 at the end
            now = self._rent_potential()  # a new episode's where an env ended
            after = now * ~result.env_done.unsqueeze(1)
            extra += (ppo.gamma * after - self._rent_before).reshape(n)
            self._rent_before = now
        if ppo.discount_shaping:  # gamma x potential' - potential, potential(end) = 0
            after = world.shaping_potential() * ~result.env_done.unsqueeze(1)
            extra -= (1.0 - ppo.gamma) * after.reshape(n)

    def _store_events(self, t: int, result) -> None:
        """The tick's ends and world events into the rollout buffers (telemetry counts them)."""
        buffers, n, ev = self.buffers, self.n, result.events
        buffers.dones[t] = (result.terminated | result.truncated).reshape(n)
        store_tick(buffers.events, t, ev)
        self.state.episode_faints += ev.fainted.sum(-1)

    def _episodes_ended(self, result, ended: _EndedEpisodes) -> None:
        """The figures of the episodes that ended this tick (not those begun part way)."""
        state, world = self.state, self.world
        done = result.env_done
        whole = done & ~state.partial  # an episode begun part way is no figure
        active = world.active_agents().float()
        if self.background is None:
            per_capita = result.episode_return.sum(-1) / active
        else:  # the learner's figure is its own agents'
            per_capita = result.episode_return[:, self.is_focal].mean(-1)
            background = result.episode_return[:, ~self.is_focal].mean(-1)
            ended.background += background[whole].tolist()
        ended.returns += per_capita[whole].tolist()
        ended.lengths += result.episode_length[whole].tolist()
        ended.survival += (1.0 - state.episode_faints / active)[whole].tolist()
        state.episode_faints[done] = 0
        state.partial[done] = False

    def _batch(
        self, learner_extra: torch.Tensor, next_value: torch.Tensor
    ) -> tuple[Batch, torch.Tensor, torch.Tensor]:
        """Advantages (GAE) and the flat batch of valid transitions (b_ in CleanRL), with
        their world rewards and behaviour entropies for telemetry."""
        buffers, ppo = self.buffers, self.config.ppo
        advantages, returns = compute_gae(
            buffers.rewards + learner_extra,
            buffers.values,
            buffers.dones,
            next_value,
            ppo.gamma,
            ppo.gae_lambda,
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
        return batch, flat(buffers.rewards), flat(buffers.entropy)

    def _rollout_events(self) -> dict[str, float]:
        """The epoch's world-event counters, and in a multi-day town its per-weekday figures."""
        world, buffers = self.world, self.buffers
        events = rollout_events(
            buffers.events, buffers.features, self.a, world.names, self.meal_types
        )
        if self.week:
            focal = self.is_focal.repeat(self.e)
            calendar = world.calendar
            events |= week_figures(
                buffers, self.a, calendar.ticks_per_day, focal, calendar.has_rent
            )
        return events

    def _act(self, codes: torch.Tensor, features: torch.Tensor, masks: torch.Tensor):
        """The learner's (action, log-prob, entropy, value, logits) for every row; under a
        population only the focal rows are computed (background rows hold zeros and are
        replaced by the background's actions), so background agents cost only their own
        inference."""
        net, generator = self.net, self.state.act_generator
        if self.background is None:
            return net.get_action_and_value(codes, features, masks, generator=generator)
        rows = self.focal_rows
        outputs = net.get_action_and_value(
            codes[rows], features[rows], masks[rows], generator=generator
        )
        full = []
        for output in outputs:
            whole = output.new_zeros((len(codes), *output.shape[1:]))
            whole[rows] = output
            full.append(whole)
        return tuple(full)

    def _replay_chunk(self) -> EpochData:
        """The next chunk of captured samples, with advantages from the current critic."""
        start = time.perf_counter()
        refs, new_cycle = self.state.replay.next_chunk()
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
    def _stagger(self, world: World) -> torch.Tensor:
        """(E,) bool: the envs whose first episode `ppo.stagger_starts` began part way."""
        e = self.e
        offsets = torch.zeros(e, dtype=torch.int64, device=self.device)
        if self.config.ppo.stagger_starts:
            offsets = torch.arange(e, device=self.device) * world.layout.episode_ticks // e
            world.begin_part_way(offsets)
        return offsets > 0

    def _rent_potential(self) -> torch.Tensor:
        """(E, A) -ppo.rent_shaping x the share of the rent each agent's money leaves short."""
        state = self.world.state
        shortfall = self.world.calendar.rent_shortfall(state.meters, state.alive)
        return -self.config.ppo.rent_shaping * shortfall

    def _truncation_bootstrap(self, result) -> torch.Tensor:
        """(n,) gamma x V(state at the tick limit) for truncated agents, 0 elsewhere."""
        final, n = result.final_obs, self.n
        value = self.net.get_value(
            final.map_codes.reshape(n, self.window, self.window),
            final.features.reshape(n, self.num_features),
        )
        return self.config.ppo.gamma * value * result.truncated.reshape(n)

    def _final_kl(self, batch: Batch) -> float:
        """KL(behaviour || updated policy) over the epoch's transitions, after the update."""
        if not len(batch):
            return 0.0
        total = 0.0
        with torch.no_grad(), precision_scope(self.config.ppo.precision, self.device):
            for i in range(0, len(batch), KL_CHUNK):
                part = batch.take(torch.arange(i, min(i + KL_CHUNK, len(batch))))
                _, logprob, _, _, logits = self.net.get_action_and_value(
                    part.codes, part.features, part.masks, action=part.actions
                )
                total += float(behaviour_kl(part, logits, logprob).sum())
        return total / len(batch)

    def _save(self, epoch: int, improved: bool) -> None:
        """Checkpoint after `epoch`: latest always, best when improved, and periodic ones."""
        self.state.epoch = epoch
        if self.recorder is not None:
            self.recorder.flush()  # what ended before this checkpoint is on disk when it is
        with self.phases.time("checkpoint"):
            payload = self._payload()
            save_checkpoint(self.run_dir.latest, payload)
            if improved:
                save_checkpoint(self.run_dir.best, payload)
            every = self.config.train.checkpoint_every
            if every > 0 and epoch % every == 0:
                save_checkpoint(self.run_dir.checkpoints / f"epoch_{epoch:06d}.pt", payload)

    def _payload(self) -> dict[str, Any]:
        return self.state.state_dict(
            {
                "num_epochs": self.num_epochs,
                "telemetry_offset": self.writer.offset,
                "scenario": self.config.scenario.name,
                "config": self.config_yaml,
            }
        )

    def _evaluate(self, epoch: int, elapsed: float, final: bool = False) -> dict[str, Any]:
        """Evaluate; write evaluation.json (latest) and append to evaluation_history.jsonl.
        The final evaluation is of the selected weights (when selecting) and says so."""
        config = self.config
        episodes, seed = config.train.eval_episodes, config.seed + 1000
        if self._baselines is None:  # the routine and random play the same at every evaluation
            self._baselines = baseline_reports(config, episodes, seed)
        evaluation = evaluate(config, self.net, episodes, seed, self._baselines)
        entry = {
            "epoch": epoch,
            "steps": self.state.steps,
            "elapsed_sec": round(elapsed, 3),
            **evaluation,
        }
        if final and self.selection is not None:
            entry["selection"] = self.selection.summary()  # whose weights were evaluated
        if config.population.background:  # the figures are the focal agents' beside these
            entry["population"] = describe(config.population)
        atomic_write_json(self.run_dir.evaluation, entry)
        with open(self.run_dir.evaluation_history, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        return evaluation
