"""The epoch-record schema: every key, its version, type and meaning, declared once.

The trainer's writer, the validator, the watcher, the summariser and the MLflow logger all
iterate over these declarations; nobody retypes a key list.
"""

from __future__ import annotations

from dataclasses import dataclass

from townlet.util.weekdays import WEEKDAY_NAMES

CURRENT_VERSION = "1.1"
"""Versions are named by strings here; records carry them as numbers (1.0, 1.1, 1.2).

The rules follow the validator of the system we replace: the 1.0 keys below (which include
the advantage, clipping and `conflict.*` keys) are required at every version; a 1.0 record must
not carry the keys the original lists as 1.1-only (`FORBIDDEN_IN_10`); 1.2 is 1.1 plus the
optional `anneal_*` keys of a behaviour-cloning/PPO anneal schedule, each of a declared type
(or null); 1.3 is 1.2 plus the optional `profile_*_sec` keys of a profiled run and the
per-weekday keys of a multi-day town."""
DATA_MODES = ("rollout", "replay", "mixed", "bc")


@dataclass(frozen=True)
class Key:
    name: str
    since: str  # first telemetry_version that carries it
    meaning: str
    kind: str = "number"  # number | string
    required: bool = True  # False: present only in some data modes (baseline_*) or optional


def _keys(since: str, spec: str) -> list[Key]:
    rows = []
    for line in spec.strip().splitlines():
        name, _, meaning = line.strip().partition(" ")
        rows.append(Key(name, since, meaning.strip()))
    return rows


_V10 = _keys(
    "1.0",
    """
epoch Epoch number (1-based, continues across resume)
updates Optimiser steps taken in this epoch
transitions Valid agent transitions used by this epoch's update
loss_policy Clipped surrogate policy loss (mean over minibatches of the last update epoch)
loss_value Value loss (clipped when value clipping is on)
loss_entropy Mean policy entropy (the bonus term before its coefficient)
loss_total policy - ent_coef * entropy + vf_coef * value (+ bc.ppo_anchor * anchor when anchored)
clip_fraction Fraction of transitions whose ratio left [1 - clip, 1 + clip]
adv_mean Mean advantage before normalisation
adv_std Standard deviation of the advantages before normalisation
grad_norm Mean global gradient norm before clipping
kl_divergence KL(behaviour || updated) after the update: exact with logits kept, else k3 estimate
telemetry_version Record format version
lr Learning rate used in this epoch
steps Agent steps taken so far (all epochs)
adv_zero_std_batches Minibatches whose advantages had (near) zero standard deviation
adv_min_std Smallest advantage standard deviation over minibatches
clip_triggered_minibatches Minibatches in which some ratio was clipped
clip_fraction_max Largest per-minibatch clip fraction
conflict.rivalry_max_mean_avg Tick average of the mean over agents of each agent's strongest rivalry
conflict.rivalry_max_max_avg Tick average of the strongest rivalry of any agent
conflict.rivalry_avoid_count_mean_avg Tick average of the mean number of agents each avoids
conflict.rivalry_avoid_count_max_avg Tick average of the largest avoid count of any agent
""",
)

_V11 = _keys(
    "1.1",
    """
epoch_duration_sec Wall time of the epoch (rollout + update)
cycle_id Data cycle counter (one rollout or one pass over the captures)
batch_entropy_mean Mean policy entropy over the behaviour policy's transitions
batch_entropy_std Standard deviation of that entropy
grad_norm_max Largest gradient norm before clipping
kl_divergence_max Largest per-minibatch KL(behaviour || current) in the update (as kl_divergence)
reward_advantage_corr Pearson correlation of rewards and advantages
rollout_ticks World ticks per rollout
log_stream_offset Records written including this one (the first is 1), across rotation and resume
queue_conflict_events Contention events (joining a queue behind others) in the epoch's rollout
queue_conflict_intensity_sum Sum of their intensities (place in line)
shared_meal_events Ticks on which two or more agents of an env completed the same meal type
late_help_events Late workers an on-time coworker covered for (smaller late penalty)
shift_takeover_events Absent workers' shifts a present coworker took over (extra wage)
chat_success_events Chats at or above the success threshold (social and familiarity rise)
chat_failure_events Chats below the threshold (the pair's rivalry rises)
chat_quality_mean Mean quality in [0, 1] of the epoch's chats; 0 when none was attempted
""",
)
_DATA_MODE_TEXT = "rollout | replay | bc (a mixed run alternates rollout and replay)"
_V11.insert(1, Key("data_mode", "1.1", _DATA_MODE_TEXT, kind="string"))
FORBIDDEN_IN_10 = frozenset(
    (
        "epoch_duration_sec",
        "cycle_id",
        "batch_entropy_mean",
        "batch_entropy_std",
        "grad_norm_max",
        "kl_divergence_max",
        "reward_advantage_corr",
        "rollout_ticks",
        "log_stream_offset",
        "queue_conflict_events",
        "queue_conflict_intensity_sum",
    )
)
"""The keys the original validator refuses in a 1.0 record."""

ANNEAL_KEYS = [
    Key(name, "1.2", meaning, kind=kind, required=False)
    for name, kind, meaning in (
        ("anneal_cycle", "number", "Anneal schedule cycle (BC and PPO phases) of this epoch"),
        ("anneal_stage", "string", "Anneal stage: bc | ppo"),
        ("anneal_dataset", "string", "Label of the demonstrations the BC phase cloned"),
        ("anneal_bc_accuracy", "number", "BC accuracy on the demonstrations' actions"),
        ("anneal_bc_threshold", "number", "Accuracy the BC gate requires"),
        ("anneal_bc_passed", "bool", "Whether the BC gate passed"),
        ("anneal_rolled_back", "bool", "A failed BC gate restored the last weights that passed"),
        ("anneal_loss_baseline", "number", "Baseline loss the PPO phase is compared with"),
        ("anneal_queue_baseline", "number", "Baseline queue conflict events"),
        ("anneal_intensity_baseline", "number", "Baseline queue conflict intensity"),
        ("anneal_loss_flag", "bool", "PPO loss drifted beyond its baseline"),
        ("anneal_queue_flag", "bool", "Queue conflict events drifted beyond their baseline"),
        ("anneal_intensity_flag", "bool", "Queue conflict intensity drifted beyond its baseline"),
    )
]
"""Optional in 1.2 records; each may also be null."""

BASELINE_KEYS = [
    Key(name, "1.1", meaning, required=False)
    for name, meaning in (
        ("baseline_sample_count", "Capture samples read in this epoch"),
        ("baseline_reward_mean", "Mean per-step reward of the capture samples (their metrics)"),
        ("baseline_reward_sum", "Sum of the samples' reward sums"),
        ("baseline_reward_sum_mean", "Mean of the samples' reward sums"),
        ("baseline_log_prob_mean", "Mean behaviour log-probability of the samples"),
    )
]

EXTRA_KEYS = [
    Key(name, "1.1", meaning, required=False)
    for name, meaning in (
        ("explained_variance", "1 - Var(returns - values) / Var(returns) over the epoch"),
        ("steps_per_sec", "Agent steps per second over the epoch (rollout + update)"),
        ("rollout_sec", "Seconds spent acting in the world"),
        ("update_sec", "Seconds spent in the PPO update"),
        (
            "episodic_return",
            "Mean return per agent over the last train.return_window finished "
            "episodes (absent until one finishes); per focal agent under a population",
        ),
        (
            "episodic_return_background",
            "Under a population: the background agents' mean return over the same episodes",
        ),
        ("episodic_length", "Mean length in ticks over the same episodes"),
        ("episodes_finished", "Episodes finished in this epoch (env episodes; often 0)"),
        ("episodes_in_window", "Finished episodes the running means are taken over"),
        ("survival_rate", "Fraction of those agent-episodes that ended without fainting"),
        ("curriculum_stage", "Curriculum stage (1-based) during the epoch"),
        ("faint_events", "Agents fainting in the epoch's rollout"),
        ("shift_on_time_events", "On-time arrivals in the epoch's rollout"),
        ("shift_late_events", "Late arrivals in the epoch's rollout"),
        ("shift_absent_events", "Missed shifts in the epoch's rollout"),
        ("utility_outage_events", "Utility outages that began during the epoch's rollout"),
        ("shower_complete_events", "Completed showers in the epoch's rollout"),
        ("sleep_complete_events", "Completed sleeps (Bed) in the epoch's rollout"),
        ("recording_episodes_written", "Episodes the recorder has written so far (run total)"),
        ("recording_episodes_dropped", "Episodes dropped because the writer's queue stayed full"),
    )
]
EVENT_PREFIX = "events.completed."  # + affordance type: completions in the epoch's rollout

PHASES = (
    ("world_step", "stepping the world (its observations left out)"),
    ("observation", "building observations"),
    ("policy", "the policy's forward passes while acting"),
    ("background", "a population's background agents choosing actions"),
    ("buffers", "copying the tick into the rollout buffers"),
    ("recording", "recording episodes"),
    ("gae", "advantages and the flat batch"),
    ("update", "the PPO update"),
    ("kl", "the exact KL(behaviour || updated) over the epoch's batch after the update"),
    ("bc", "behaviour cloning and its accuracy checks"),
    ("evaluation", "validation and evaluation"),
    ("checkpoint", "writing checkpoints"),
    ("other", "everything else"),
    ("wall", "all of it: the wall time since the previous record"),
)
PROFILE_KEYS = [
    Key(
        f"profile_{name}_sec",
        "1.3",
        f"Seconds since the previous record spent on {meaning}",
        required=False,
    )
    for name, meaning in PHASES
]
"""Optional in 1.3 records (`train.profile=true`); the phases' seconds sum to
`profile_wall_sec`."""

WEEKDAY_FIGURES = (
    ("reward_per_agent_day", "Reward per agent-day on this weekday in the epoch's rollout"),
    ("on_time_rate", "Share of the shifts met on this weekday begun on time (rollout)"),
)
RENT_FIGURES = (
    ("rent_paid_events", "Weekly rents paid in the epoch's rollout"),
    ("rent_missed_events", "Weekly rents that fell due without the money (rollout)"),
)
WEEK_KEYS = [
    Key(f"weekday.{day}.{figure}", "1.3", meaning, required=False)
    for day in WEEKDAY_NAMES
    for figure, meaning in WEEKDAY_FIGURES
] + [Key(name, "1.3", meaning, required=False) for name, meaning in RENT_FIGURES]
"""Optional in 1.3 records of a multi-day town (`scenario.days` > 1): each weekday's figures
where the epoch's rollout reached that weekday, and the rent's events where the town has rent."""
V13_PREFIXES = ("profile_", "weekday.", "rent_")
"""A record carrying a key that starts so is version 1.3."""

REQUIRED: dict[str, list[Key]] = {
    "1.0": _V10,
    "1.1": _V10 + _V11,
    "1.2": _V10 + _V11,
    "1.3": _V10 + _V11,
}
ALL_KEYS: list[Key] = (
    _V10 + _V11 + BASELINE_KEYS + EXTRA_KEYS + ANNEAL_KEYS + PROFILE_KEYS + WEEK_KEYS
)


def version_key(value: object) -> str | None:
    """The schema's name for a record's `telemetry_version` (1.1 -> "1.1"), None if unknown."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        name = f"{float(value):.1f}"
    except ValueError:
        return None
    return name if name in REQUIRED else None


def required_names(version: str) -> list[str]:
    return [k.name for k in REQUIRED[version]]
