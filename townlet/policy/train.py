"""`train(cfg, output_dir, tracker)`: a training run with its plumbing around the `Trainer`.

The trainer is the algorithm; this module connects it to the rest of a run: each epoch
record goes to the tracker, and at the end the training plot is drawn, the recordings are
summarised, and the run's files are logged as tracking artifacts.
Leaves in the run directory: `telemetry/ppo.jsonl` and `ppo.png`,
`checkpoints/{latest,best,epoch_N}.pt`, `evaluation.json`, `evaluation_history.jsonl` and,
when recording, `recordings_summary.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from townlet.config.schema import TownletConfig
from townlet.config.validate import validate
from townlet.policy.run_report import TrainResult, describe, flatten_numbers
from townlet.policy.trainer import Trainer, TrainingInterrupted
from townlet.recording.summary import SUMMARY_NAME, summarise_recordings
from townlet.telemetry.plot import TRAINING_KEYS, plot
from townlet.tracking import Tracker
from townlet.tracking.names import grouped
from townlet.tracking.optuna_trial import trial_reporter
from townlet.tracking.tracker import MetricBatches
from townlet.util.atomic import atomic_write_json
from townlet.util.run_dir import RunDir
from townlet.util.stopping import PRUNED_FILE, Pruned

__all__ = ["TrainResult", "Trainer", "TrainingInterrupted", "describe", "train"]


def train(
    cfg: DictConfig | TownletConfig, output_dir: Path, tracker: Tracker | None = None
) -> TrainResult:
    """Train on the composed config; return what the run left and how it evaluated."""
    config = validate(cfg) if isinstance(cfg, DictConfig) else cfg
    tracker = tracker or Tracker()
    output_dir = Path(output_dir)

    # series that never change are parameters, not charts: the BC gate's threshold always,
    # the curriculum stage when there is no curriculum
    constant = {"anneal_bc_threshold"} | (
        set() if config.curriculum.stages else {"curriculum_stage"}
    )

    batches = MetricBatches(tracker)

    def log_record(epoch: int, record: dict) -> None:
        shown = {k: v for k, v in record.items() if k not in constant}
        batches.add(grouped(shown), epoch)

    reporter = trial_reporter(config.train.trial)
    try:
        links = {"run_dir": str(output_dir.resolve())}
        if tracker.run_id is not None:  # the recordings point at the run that made them
            links |= {"mlflow_run_id": tracker.run_id, "tracking_uri": tracker.uri or ""}
        try:
            result = Trainer(config, output_dir, log_record, reporter, links).run()
        finally:
            batches.flush()
    except Pruned as pruned:  # a clean end: what the run has so far is logged
        atomic_write_json(output_dir / PRUNED_FILE, {"epoch": pruned.epoch, "value": pruned.value})
        plot_training(output_dir, config)
        tracker.set_tags({"pruned": "true", "pruned_epoch": str(pruned.epoch)})
        tracker.log_artifact(RunDir.of(output_dir).telemetry_dir, "telemetry")
        tracker.log_artifact(RunDir.of(output_dir).evaluation_history)
        raise
    plot_training(output_dir, config)
    tracker.log_metrics(grouped(flatten_numbers(result.evaluation, "eval.")), step=result.epochs)
    tracker.log_artifact(RunDir.of(output_dir).telemetry_dir, "telemetry")
    tracker.log_artifact(RunDir.of(output_dir).evaluation)
    tracker.log_artifact(RunDir.of(output_dir).evaluation_history)
    if config.recording.enabled:
        summary = summarise_recordings(output_dir)
        result.recordings = summary["recordings"]
        tracker.log_artifact(output_dir / SUMMARY_NAME)
        tracker.set_tags(  # and the run lists its recordings
            {
                "recordings.count": str(summary["recordings"]),
                "recordings.episodes": ",".join(map(str, summary["episodes"][:200])),
                "recordings.by_reason": json.dumps(summary["by_reason"], sort_keys=True),
            }
        )
    return result


def training_keys(config: TownletConfig) -> tuple[str, ...]:
    """The training plot's keys less the mechanics the scenario does not have: shifts without
    a job, sleep without a Bed (their panels were flat zeros in `kitchen_breakfast`)."""
    scenario = config.scenario
    has_job = any(agent.job for agent in scenario.agents)
    has_bed = any(affordance.type == "Bed" for affordance in scenario.affordances)
    absent = {"shift_on_time_events"} if not has_job else set()
    if not has_bed:
        absent.add("events.completed.Bed")
    return tuple(key for key in TRAINING_KEYS if key not in absent)


def plot_training(output_dir: Path, config: TownletConfig | None = None) -> None:
    """`telemetry/ppo.png`: the agents, the learner and the evaluations over the run."""
    telemetry = RunDir.of(output_dir).telemetry
    if not telemetry.exists():
        return
    history = RunDir.of(output_dir).evaluation_history
    rows = [json.loads(line) for line in history.read_text().splitlines() if line]
    keys = TRAINING_KEYS if config is None else training_keys(config)
    plot(telemetry, keys=keys, skip_missing=True, evaluation=rows)
