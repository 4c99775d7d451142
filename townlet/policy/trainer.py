"""PPO over the batched town: the `Trainer`, the algorithm only.

Reads in the order it runs (CleanRL): set-up and seeding, resume, then per epoch the data from
a source (`townlet.policy.sources`: a rollout of `rollout_ticks` over `num_envs` envs, or a
chunk of captured samples — both hand over the same `EpochData`), the PPO update and the epoch
record, then the between-epochs hooks (`townlet.policy.hooks`: checkpoints, progress,
validation for selection, periodic evaluation), and at the end the final evaluation.
`train.source`: `rollout`, `replay`, `mixed` (rollout and replay epochs alternate) or `bc`
(behaviour cloning only); `train.anneal` schedules BC and PPO phases. `TrainState` is the one
owner of the net, optimizers, world, curriculum and recorder, and what checkpoints hold.
Plumbing lives elsewhere: `train.train` wires tracking, plotting and the recordings summary
around this class; `run_report` prints progress and the end-of-run summary.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from townlet.config.hashing import config_hash
from townlet.config.schema import AnnealStageConfig, TownletConfig
from townlet.curriculum import Curriculum
from townlet.policy.anneal import AnnealSchedule
from townlet.policy.checkpoint import CheckpointError, load_checkpoint
from townlet.policy.episode_stats import FinishedEpisodes
from townlet.policy.epoch import UpdateResult
from townlet.policy.evaluate import baseline_reports, evaluate
from townlet.policy.hooks import (
    CheckpointHook,
    EpochHook,
    EvaluationHook,
    ProgressHook,
    SelectionHook,
)
from townlet.policy.imitation import (
    accuracy,
    clone_epoch,
    demonstrate,
    demonstrations_from_captures,
)
from townlet.policy.network import ActorCritic
from townlet.policy.novelty import VisitCounts
from townlet.policy.population import Background, describe, focal_agents, source_names
from townlet.policy.ppo import Anchor, Batch, behaviour_kl, ppo_update
from townlet.policy.precision import native_bf16, precision_scope
from townlet.policy.replay import ReplayStream, discover
from townlet.policy.run_report import TrainResult
from townlet.policy.selection import Selection
from townlet.policy.sources import sources_for
from townlet.policy.telemetry_record import bc_record, epoch_record
from townlet.policy.train_state import TrainState
from townlet.recording.recorder import EpisodeRecorder
from townlet.telemetry import TelemetryWriter
from townlet.telemetry.reader import truncate_after_epoch
from townlet.util.atomic import atomic_write_json
from townlet.util.phases import PhaseClock
from townlet.util.run_dir import RunDir
from townlet.world import World
from townlet.world.constants import NUM_ACTIONS

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
        world = self._make_world()
        learner = self._make_learner(world)
        curriculum = Curriculum(config.curriculum)
        curriculum.apply(world)
        world.reset()
        self.phases = world.phases = PhaseClock(opts.profile, self.device)
        replay = self._make_schedule_and_replay(world)
        recorder = self._make_recorder(world, links)
        # The one owner of the net, its optimizers, the world, the curriculum and the recorder
        # (the trainer reads them through properties); a checkpoint is its state_dict.
        self.state = TrainState(
            **learner,
            world=world,
            curriculum=curriculum,
            finished=FinishedEpisodes(opts.return_window),
            episode_faints=torch.zeros(self.e, device=self.device),
            partial=self._stagger(world),
            replay=replay,
            schedule=self.schedule,
            recorder=recorder,
            novelty=(
                VisitCounts(world.layout.sink_cell + 1, world.layout.ticks_per_day, self.device)
                if ppo.novelty_bonus > 0
                else None
            ),
        )
        self._resume_or_start()

    @property
    def net(self) -> ActorCritic:
        return self.state.net

    @property
    def world(self) -> World:
        return self.state.world

    @property
    def curriculum(self) -> Curriculum:
        return self.state.curriculum

    @property
    def recorder(self) -> EpisodeRecorder | None:
        return self.state.recorder

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
        self.e = ppo.num_envs
        # The policy, its buffers and its sampling generator live where the world does.
        self.device = world.device
        return world

    def _make_learner(self, world: World) -> dict[str, Any]:
        """The network, its two optimizers and the generators that sample and shuffle (the
        train state's fields)."""
        config, ppo, device = self.config, self.config.ppo, self.device
        if ppo.precision == "bf16" and not native_bf16(device):
            log.warning(
                "ppo.precision=bf16 on %s without native bf16: torch emulates it, expect the "
                "update to run several times slower than fp32",
                device,
            )
        window, num_features = world.layout.window, len(world.names.features)
        net = ActorCritic(window, num_features, NUM_ACTIONS, ppo.hidden_size, ppo.embedding_dim).to(
            device
        )
        learner = {
            "net": net,
            "optimizer": torch.optim.Adam(net.parameters(), lr=ppo.learning_rate, eps=1e-5),
            "act_generator": torch.Generator(device=device).manual_seed(config.seed + 1),
            "shuffle_generator": torch.Generator().manual_seed(config.seed + 2),
            "bc_optimizer": torch.optim.Adam(
                net.parameters(), lr=config.train.bc.learning_rate, eps=1e-5
            ),
        }
        self.bc_generator = torch.Generator().manual_seed(config.seed + 6)
        return learner

    def _make_schedule_and_replay(self, world: World) -> ReplayStream | None:
        """Who acts beside the learner, the epochs, the anneal schedule's demonstrations and
        the captures replayed (returned)."""
        config, ppo, opts = self.config, self.config.ppo, self.config.train
        # A population's background agents act from their own source and never enter the batch
        self.is_focal = focal_agents(config).to(self.device)
        self.background = (
            Background(world, config, config.seed + 7) if config.population.background else None
        )
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

    def _make_recorder(self, world: World, links: dict[str, str] | None) -> EpisodeRecorder | None:
        config = self.config
        if not config.recording.enabled:
            return None
        return EpisodeRecorder(
            config.recording,
            self.output_dir,
            world,
            run_id=self.output_dir.name,
            seed=config.seed,
            config_hash=config_hash(config),
            links=links,
            sources=source_names(config) if config.population.background else None,
        )

    def _resume_or_start(self) -> None:
        """Continue from `train.resume`'s checkpoint (its telemetry cut to it) or start anew;
        then the telemetry writer and the epoch data sources (the rollout's first
        observation is of the resumed world)."""
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
        self.sources = sources_for(config, self.state, self.phases, self.is_focal, self.background)
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
        state = self.state
        run_start = time.perf_counter()
        hooks = self._hooks(run_start)
        if self.start_epoch >= self.num_epochs:
            log.info("the run is complete (%d epochs); evaluating it again", self.start_epoch)
        for epoch in range(self.start_epoch + 1, self.num_epochs + 1):
            if self.schedule is not None and self.schedule.finished:
                break  # a failed BC gate skipped the PPO phases after it
            record = self._epoch(epoch)
            for hook in hooks:
                hook.after_epoch(epoch, record)
        for hook in hooks:
            hook.at_end(state.epoch)
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

    def _hooks(self, run_start: float) -> list[EpochHook]:
        """Between epochs, in this order: checkpoints, progress, validation (selection),
        evaluation."""
        opts = self.config.train
        hooks: list[EpochHook] = [
            CheckpointHook(
                self.state,
                self.run_dir,
                opts.checkpoint_every,
                self._payload,
                self.phases,
            ),
            ProgressHook(
                opts.progress,
                opts.progress_every_sec,
                self.start_epoch,
                self.num_epochs,
                lambda: self.curriculum.stage,
            ),
        ]
        if self.selection is not None:
            hooks.append(
                SelectionHook(
                    self.selection,
                    lambda epoch: self.selection.validate(
                        self.config, self.net, epoch, self._payload()
                    ),
                    lambda last: self.selection.restore_best(self.net, last),
                    self._ppo_epochs,
                    self.phases,
                )
            )
        hooks.append(
            EvaluationHook(
                opts.eval_every,
                self.num_epochs,
                lambda epoch: self._evaluate(epoch, time.perf_counter() - run_start),
                self.on_evaluation,
                self.phases,
            )
        )
        return hooks

    def _ppo_epochs(self, epoch: int) -> int:
        """PPO epochs completed by `epoch` (an anneal schedule's BC passes do not count)."""
        return self.schedule.ppo_done if self.schedule is not None else epoch

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
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        stage = self.curriculum.stage
        data = self.sources[self._mode(epoch)].collect(progress)

        # --- PPO update
        update_start = time.perf_counter()
        batch = data.batch
        with self.phases.time("update"):
            stats = (
                ppo_update(
                    self.net, state.optimizer, batch, ppo, state.shuffle_generator, self._anchor()
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
            score = None  # measured every `train.bc.accuracy_every` PPO epochs
            if epoch % self.config.train.bc.accuracy_every == 0:
                with self.phases.time("bc"):
                    score = accuracy(self.net, self.accuracy_demos)
            record.update(self._anneal_fields("ppo", score))
            self.schedule.ppo_epoch_done()
        self._log(epoch, record)

        # --- the best episodic return so far (the checkpoint hook writes best.pt for it)
        improved = bool(data.finished_returns) and (
            state.best_return is None or record["episodic_return"] > state.best_return
        )
        if improved:
            state.best_return, state.best_epoch = record["episodic_return"], epoch
        if self.curriculum.maybe_advance(self.world, epoch) and self.recorder is not None:
            self.recorder.stage_changed(self.curriculum.stage)
        return record

    def _anchor(self) -> Anchor | None:
        """The demonstrations PPO is held near in an anneal schedule (`train.bc.ppo_anchor`)."""
        weight = self.config.train.bc.ppo_anchor
        if self.schedule is None or self.demos is None or weight <= 0:
            return None
        return Anchor(self.demos, weight)

    def _anneal_fields(self, stage: str, bc_accuracy: float | None, **extra: Any) -> dict[str, Any]:
        """The schedule's telemetry; no accuracy keys for an epoch that did not measure it."""
        threshold = self.schedule.threshold
        measured = (
            {}
            if bc_accuracy is None
            else {"anneal_bc_accuracy": bc_accuracy, "anneal_bc_passed": bc_accuracy >= threshold}
        )
        return {
            "anneal_cycle": self.schedule.cycle,
            "anneal_stage": stage,
            "anneal_dataset": self.demos.label,
            "anneal_bc_threshold": threshold,
            **measured,
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
            pass_number = self.schedule.done_in_stage + 1
            every = opts.bc.accuracy_every
            measured = self.schedule.gate_is_next or pass_number % every == 0
            score = accuracy(self.net, self.demos) if measured else None
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
        return record

    def _log(self, epoch: int, record: dict[str, Any]) -> None:
        if self.phases.enabled:  # the wall time since the last record, by phase
            record.update({f"profile_{k}_sec": v for k, v in self.phases.take().items()})
        if self.writer.should_log(epoch):
            self.writer.write(record)
            self.on_record(epoch, record)

    # ------------------------------------------------------------------ data sources
    # ------------------------------------------------------------------ helpers
    def _stagger(self, world: World) -> torch.Tensor:
        """(E,) bool: the envs whose first episode `ppo.stagger_starts` began part way."""
        e = self.e
        offsets = torch.zeros(e, dtype=torch.int64, device=self.device)
        if self.config.ppo.stagger_starts:
            offsets = torch.arange(e, device=self.device) * world.layout.episode_ticks // e
            world.begin_part_way(offsets)
        return offsets > 0

    def _final_kl(self, batch: Batch) -> float:
        """KL(behaviour || updated policy) over the epoch's transitions, after the update."""
        if not len(batch):
            return 0.0
        total = 0.0
        with torch.no_grad(), precision_scope(self.config.ppo.precision, self.device):
            for i in range(0, len(batch), KL_CHUNK):
                part = batch.rows(i, i + KL_CHUNK)
                logits = self.net.masked_logits(part.codes, part.features, part.masks)
                total += float(behaviour_kl(part, logits).sum())
        return total / len(batch)

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
