"""Dataclass schemas for every config group.

Hydra merges each YAML file into these typed nodes, so a misspelt or unknown key, or a value of
the wrong type, fails at start-up with an error that names the key (the system we replace
silently ignored such keys). Semantic checks that need more than one node (a meter named in an
effect must exist, an agent must not stand on a wall) live in `townlet.config.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import II, MISSING

from townlet.config.choices import (
    WEEKDAYS,
    AnnealMode,
    DataSource,
    IntentKind,
    PartnerSource,
    Precision,
    PrunerKind,
    TrackingBackend,
    VideoQuality,
    VideoStyle,
    Weekday,
)

# --------------------------------------------------------------------------- world


@dataclass
class MeterConfig:
    """One need. Values live in [0, 1], 1 = fully satisfied."""

    decay: float = 0.001
    """Amount lost per tick."""
    initial: float = 0.8
    """Starting value unless the scenario overrides it for an agent."""
    critical: bool = False
    """Reaching 0 makes the agent faint (its episode ends with the terminal penalty)."""


@dataclass
class AffordanceTypeConfig:
    """One entry of the affordance catalogue; placements live in the scenario."""

    capacity: int = 1
    """Agents served at once; the rest wait in a FIFO queue."""
    duration: int = 1
    """Ticks from start to completion."""
    open_hour: float = 0.0
    """Opening hour in [0, 24]; open_hour > close_hour wraps past midnight."""
    close_hour: float = 24.0
    cost: float = 0.0
    """Money taken when the interaction starts; an agent with less money cannot start."""
    effects: dict[str, float] = field(default_factory=dict)
    """Meter deltas by meter name, earned over the interaction (see world.interaction_effects)."""
    stock: int = -1
    """Uses per day per instance (-1 = unlimited); restocked at midnight."""
    workplace: bool = False
    """A job location: presence matters, INTERACT does nothing."""


@dataclass
class JobConfig:
    """A daily shift at a workplace instance named in the scenario."""

    location: str = MISSING
    shift_start: float = 9.0
    """Hour of day the shift starts."""
    shift_end: float = 17.0
    grace_ticks: int = 2
    """Arriving at most this many ticks after the start still counts as on time."""
    wage_per_tick: float = 0.004
    """Money earned per tick present during the shift."""
    late_penalty: float = 0.5
    """Reward penalty charged once, at the grace deadline, to a worker not there on time."""
    absent_penalty: float = 1.0
    """Reward penalty spread over the shift's ticks after the grace deadline, charged for each
    of them the worker is not at work: a missed shift costs late_penalty + absent_penalty."""
    days: list[Weekday] = field(default_factory=lambda: list(WEEKDAYS[:5]))
    """The weekdays the shift runs (Monday to Friday by default); on the others the worker is
    off: no shift, no wage, no penalty, no commute pull."""


@dataclass
class RivalryConfig:
    gain: float = 0.25
    """Rivalry added between a queue joiner and each agent ahead of it, per contention event."""
    decay: float = 0.02
    """Fraction of rivalry lost per tick."""
    avoid_threshold: float = 0.5
    """Rivalry above this marks an agent to avoid (observation feature)."""


@dataclass
class SocialConfig:
    """Chats, late help and shift takeovers between agents (`townlet/world/social.py`)."""

    chat_base: float = 0.4
    """Quality of a chat between strangers with no rivalry between them."""
    chat_familiarity_weight: float = 0.6
    """Quality added per unit of the pair's familiarity."""
    chat_rivalry_weight: float = 1.0
    """Quality taken per unit of the pair's rivalry."""
    chat_need_weight: float = 0.3
    """Quality added per unit of the pair's mean social need (1 - social meter): the lonely are
    eager to talk, the sated less so."""
    chat_success_threshold: float = 0.5
    """A chat of at least this quality succeeds; below it, it fails."""
    chat_social_gain: float = 0.2
    """Social meter both chatters gain from a successful chat, times its quality."""
    chat_familiarity_gain: float = 0.15
    """Familiarity a successful chat adds to the pair, times its quality."""
    chat_failure_rivalry: float = 0.2
    """Rivalry a failed chat adds to the pair."""
    chat_cooldown_ticks: int = 10
    """Ticks before the same pair can chat again (10 = an hour in the default town). Without it,
    PPO on the default town learned to chat with whoever stood next to it every tick (49 chats
    per agent-day) and was late to half its shifts."""
    meal_familiarity_gain: float = 0.05
    """Familiarity added between agents who finish the same meal type on the same tick."""
    familiarity_decay: float = 0.001
    """Fraction of familiarity lost per tick."""
    help_discount: float = 0.5
    """Share of the late penalty a covering coworker saves a late colleague."""
    help_reward: float = 0.1
    """Reward to the coworker who covers (once per late colleague covered)."""
    help_familiarity_gain: float = 0.1
    takeover_wage: float = 0.05
    """Money a present coworker earns for taking over an absent colleague's shift."""


@dataclass
class RewardConfig:
    survival: float = 0.01
    """Per tick alive."""
    need_weights: dict[str, float] = field(default_factory=dict)
    """Weight on each meter's change during the tick, by meter name (missing = 0)."""
    wage_weight: float = 1.0
    """Reward per unit of money earned as wage."""
    faint_penalty: float = 1.0
    """Terminal penalty on fainting; never clipped."""
    clip_min: float = -0.2
    """Clip range for the per-tick shaping terms only (survival, needs, wage)."""
    clip_max: float = 1.0
    commute: float = 0.0
    """Potential-based shaping toward the workplace: while a worker's commute window is open
    and it has not arrived, its potential is -commute x (path distance to work / longest path).
    The reward is the change of potential, which sums to zero over any window that closes, so
    it changes when the agent is paid, not how lives rank (Ng et al. 1999). 0 = off."""
    commute_lead_hours: float = 2.0
    """The commute window opens this many hours before the shift and closes at its end."""
    interaction_shaping: float = 0.0
    """Potential-based shaping of long interactions (0 = off, 1 = full): an agent's potential
    is this weight x the weighted need gain its current interaction has still to pay (capped by
    the room left in each meter), 0 at an episode's end. Starting a Bed when tired is paid at
    once and leaving it early costs what it would still have paid; every episode's return is
    unchanged (the term telescopes to 0 from a start outside any interaction), so the best
    policy is too. A 20-tick Bed paying 0.0225 a tick was never learned from the reward alone."""
    rest_shaping: float = 0.0
    """Potential-based shaping toward bed when tired (0 = off): an agent's potential is
    -rest_shaping x its path distance to its own bed (scaled by the longest path) x how far its
    energy is below `rest_below`, 0 at an episode's end. Walking home tired is paid as it
    happens instead of only at the Bed; every episode that starts rested has its return
    unchanged (the term telescopes to 0), so the best policy is too. From the reward alone the
    policy stood at its workplace all night (measured 2026-12-07)."""
    rest_below: float = 0.5
    """The energy below which the rest potential grows (see rest_shaping)."""


@dataclass
class ObservationConfig:
    window: int = 9
    """Side of the egocentric square window; odd. The policy reads all of it, so it sets the
    network's size too (9 x 9 keeps PPO above 50k agent-steps/s on 2 cores; 11 x 11 about 35k)."""
    opening_hours: bool = False
    """Observe, per affordance type that keeps hours, whether one is open now (`open_cafe`, ...):
    posted hours an agent may know without walking to the door. Off by default so checkpoints
    and the measured recipes trained without them stay loadable (experiment=scratch turns it
    on)."""


@dataclass
class RentConfig:
    """A weekly rent taken from the money meter at a fixed time of the week (multi-day towns)."""

    amount: float = 0.0
    """Money due each week; 0 = no rent."""
    weekday: Weekday = Weekday.sun
    hour: float = 12.0
    """When it falls due: paid at once if the money is there, else missed (and charged)."""
    penalty: float = 1.0
    """Reward charged to an agent that cannot pay when the rent falls due (the `rent` term)."""


@dataclass
class FatigueConfig:
    """What too little sleep carries over: below `below` energy an agent works slower (earns
    `wage_factor` of its wage) and may faint (`faint_chance` a tick). Off at `below` 0."""

    below: float = 0.0
    wage_factor: float = 0.5
    faint_chance: float = 0.0


@dataclass
class WorldConfig:
    ticks_per_day: int = 240
    meters: dict[str, MeterConfig] = field(default_factory=dict)
    affordances: dict[str, AffordanceTypeConfig] = field(default_factory=dict)
    jobs: dict[str, JobConfig] = field(default_factory=dict)
    rivalry: RivalryConfig = field(default_factory=RivalryConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    observation: ObservationConfig = field(default_factory=ObservationConfig)
    social: SocialConfig = field(default_factory=SocialConfig)
    utilities: dict[str, list[str]] = field(default_factory=dict)
    """Utility -> the affordance types it powers, e.g. water: [Shower]; an outage of the
    utility (scenario.outages) closes them."""
    rent: RentConfig = field(default_factory=RentConfig)
    fatigue: FatigueConfig = field(default_factory=FatigueConfig)
    interaction_effects: str = "per_tick"
    """per_tick: an interaction's effects accrue evenly over its ticks and one cut short keeps
    what it earned; on_completion: all at the last tick (the system we replace)."""
    device: str = "cpu"


# --------------------------------------------------------------------------- scenario


@dataclass
class PlacementConfig:
    """An affordance instance in the scenario's town."""

    name: str = MISSING
    type: str = MISSING
    pos: list[int] = MISSING
    """[x, y]."""


@dataclass
class IntentConfig:
    """One step of an agent's script; the scripted controller turns it into actions."""

    do: IntentKind = MISSING
    """go_to | use | wait | wait_until | leave_queue | chat."""
    target: str | None = None
    """Affordance instance name for go_to / use."""
    pos: list[int] | None = None
    """[x, y] for go_to a tile."""
    ticks: int | None = None
    """For wait."""
    hour: float | None = None
    """For wait_until."""


@dataclass
class ExpectationConfig:
    """A behaviour the scenario must show, checked against its capture's per-agent metrics."""

    metric: str = MISSING
    """A per-sample capture metric, e.g. `meter_gain.satiation`, `completions.Shower`."""
    agent: str | None = None
    """Only this agent; None = every agent must satisfy it (or their sum, with `total`)."""
    total: bool = False
    """Compare the sum over the selected agents instead of each one."""
    min: float | None = None
    max: float | None = None
    why: str = ""
    """What the check demonstrates, shown when it fails."""


@dataclass
class RelationshipConfig:
    """A pair's starting relationship (both directions)."""

    a: str = MISSING
    b: str = MISSING
    familiarity: float = 0.0
    rivalry: float = 0.0


@dataclass
class OutageConfig:
    """A scheduled outage: the utility's affordances are closed from start to end hour, daily."""

    utility: str = MISSING
    start_hour: float = MISSING
    end_hour: float = MISSING


@dataclass
class RandomOutageConfig:
    """Random outages of a utility: each env draws, every tick the utility is up, whether an
    outage begins (from the episode's own key, so deterministic under the seed); one lasts
    `hours`, closing the utility's affordances like a scheduled one."""

    utility: str = MISSING
    per_day: float = MISSING
    """Expected outages a day (a chance of per_day / ticks_per_day each tick it is up)."""
    hours: float = MISSING
    """How long each lasts (at least one tick)."""


@dataclass
class AgentConfig:
    id: str = MISSING
    pos: list[int] = MISSING
    """[x, y] start tile."""
    meters: dict[str, float] = field(default_factory=dict)
    """Initial meter overrides by name."""
    job: str | None = None
    """Key of world.jobs."""
    bed: str | None = None
    """Name of the agent's own Bed affordance (observed as an offset); None = the nearest."""
    script: list[IntentConfig] = field(default_factory=list)
    day_off_script: list[IntentConfig] = field(default_factory=list)
    """In a multi-day scenario, the script of the days the agent's job does not run (empty =
    `script` every day). Each day's script starts at the scenario's start hour."""


@dataclass
class ScenarioConfig:
    name: str = MISSING
    description: str = ""
    width: int = MISSING
    height: int = MISSING
    walls: list[list[int]] = field(default_factory=list)
    """Each entry is [x, y] or a filled rectangle [x0, y0, x1, y1] (inclusive)."""
    affordances: list[PlacementConfig] = field(default_factory=list)
    agents: list[AgentConfig] = field(default_factory=list)
    ticks: int = 240
    """Episode length in ticks (truncation limit); days x world.ticks_per_day when days > 1."""
    days: int = 1
    """Days an episode lasts. Above 1 the agents observe the day of the week, jobs keep their
    working days, and each agent's script starts again every morning."""
    start_weekday: Weekday = Weekday.mon
    """The weekday of the first day."""
    start_hour: float = 6.0
    start_hour_spread: float = 0.0
    """Training only: each episode of each env starts at start_hour plus a uniform random
    offset in [0, spread) hours (24 = any hour), so every batch covers the whole day.
    Evaluation and captures keep the fixed start_hour."""
    start_meter_spread: float = 0.0
    """Training only: each agent's meters at an episode's start are drawn uniformly within
    this distance of their initial values (kept in [0.1, 1]), so a policy meets tired, hungry
    and rested states early instead of only those its own day leads to. 0 = the fixed values."""
    start_anywhere: float = 0.0
    """Training only: the chance that an agent starts an episode on a uniformly drawn walkable
    tile instead of its own start tile (an exploring policy otherwise rarely walks far from
    where its day begins). Evaluation and captures keep the scenario's positions."""
    start_seated: float = 0.0
    """Training only: the chance that an agent starts an episode already inside a long
    interaction (a Bed, a Shower, a Stove: open all day, unlimited, longer than a tick; one
    agent an instance), so a policy learns what staying in one is worth; random actions leave
    a 20-tick Bed long before it pays much (none of 1,543 random Bed starts lasted, measured)."""
    seed: int = 0
    relationships: list[RelationshipConfig] = field(default_factory=list)
    outages: list[OutageConfig] = field(default_factory=list)
    random_outages: list[RandomOutageConfig] = field(default_factory=list)
    """Utilities that go out at random, per env (see RandomOutageConfig)."""
    expect: list[ExpectationConfig] = field(default_factory=list)
    """Behaviour the scenario must show, asserted on a fresh capture by its test."""


# --------------------------------------------------------------------------- learning


@dataclass
class PPOConfig:
    """PPO hyperparameters; the only place they live (CleanRL's names)."""

    num_envs: int = 128
    """Environments stepped together in one batched world."""
    rollout_ticks: int = 64
    """World ticks per rollout; a batch is rollout_ticks x num_envs x agents transitions."""
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    """Linearly decay the learning rate to 0 over the run."""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    norm_adv: bool = True
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden_size: int = 64
    embedding_dim: int = 4
    """Size of the learned embedding of each map code."""
    bootstrap_truncated: bool = False
    """Treat the end of an episode by its tick limit as a time limit, not a death: the last
    reward gains gamma x the critic's value of the state there (Pardo et al. 2018, "Time
    Limits in Reinforcement Learning"). A day is not the end of a life; with spread starts the
    time left is not observed, and cutting the value to 0 there made the critic guess it."""
    discount_shaping: bool = False
    """Make the world's shaping gamma-consistent for learning: the world pays potential
    differences undiscounted (so every episode's return is unchanged), which a discounting
    learner reads as a charge of (1 - gamma) x |potential| a tick; this adds
    -(1 - gamma) x the potential after each step to the advantages' rewards (Ng et al. 1999's
    gamma x potential' - potential). The commute shaping otherwise pulls about 0.01 x 3 x the
    distance to work a tick while its window is open, a Bed's pay. Telemetry keeps the
    world's rewards."""
    stagger_starts: bool = False
    """Begin env i's first episode i / num_envs of the way through it (env 0, the recorded one,
    at its start), so a rollout's envs live every part of the episode instead of the same
    hour: in a week each epoch's batch would otherwise hold one day, and each update would
    fit that day at the others' expense. The first episodes cut short are left out of the
    episode statistics."""
    rent_shaping: float = 0.0
    """Weight of a potential on the weekly rent, for learning (0 = off; a town with rent only):
    potential = -weight x (rent - money) / rent where money is short of the rent, and the
    advantages' reward gains gamma x potential' - potential (0 after an episode's end). A
    missed rent is charged days after the spending that caused it, beyond what a discount of
    0.99 a tick sees; this charges the spending when it happens and pays the wage that covers
    it back. Policy-invariant (Ng et al. 1999); telemetry and evaluation keep the world's
    rewards."""
    novelty_bonus: float = 0.0
    """Count-based exploration bonus (0 = off): the advantages' reward gains this x
    1 / sqrt(visits) of the (tile, hour of day) an agent steps into, falling linearly to 0 at
    `novelty_until` of PPO training (see policy/novelty.py). Telemetry keeps the world's
    rewards."""
    novelty_until: float = 0.5
    """Fraction of PPO training after which the novelty bonus is 0."""
    precision: Precision = Precision.fp32
    """fp32 | bf16: bf16 runs the network's matmuls of acting, the PPO update and behaviour
    cloning under autocast (master weights, optimizer state, losses and sampling stay fp32)."""


@dataclass
class RecordingConfig:
    """Which training episodes to record (env 0), and how the asynchronous writer behaves."""

    enabled: bool = False
    periodic: int = 0
    """Record every N-th episode (0 = off) -> periodic_N."""
    top_percent: float = 0.0
    """Record episodes in the top percent of recent total rewards (0 = off) -> top_X.Xpct."""
    bottom_percent: float = 0.0
    performance_window: int = 100
    """Recent episodes the percentiles are taken over."""
    performance_min_history: int = 20
    """Episodes needed before the performance rule fires."""
    stage_first: int = 0
    """Record the first N episodes at each curriculum stage -> stage_K_first_N."""
    stage_pre_transition: int = 0
    """Record the last N episodes before each stage transition -> stage_K_pre_transition."""
    agents: list[int] | None = None
    """Indices of env 0's agents to record; None = all."""
    queue_size: int = 16
    """Episodes waiting for the writer; when full, wait `block_seconds`, then drop the episode."""
    block_seconds: float = 0.5


@dataclass
class StageConfig:
    """One curriculum stage: how hard the town is."""

    decay_scale: float = 1.0
    """Multiplies every meter's decay."""
    agents: int | None = None
    """Agents taking part (the first N of the scenario); None = all."""
    duration_scale: float = 1.0
    """Multiplies the duration of every affordance longer than a tick (at least 1 tick), its
    per-tick effects scaled so that a whole interaction pays the same: a 20-tick Bed at 0.25
    pays 0.1 a tick for 5 ticks, which an exploring policy completes and learns to seek."""
    min_epochs: int = 0
    """Epochs this stage runs at least before the next may start."""


@dataclass
class CurriculumConfig:
    """Stages of rising difficulty; the next starts when survival over a window is high enough."""

    name: str = "none"
    stages: list[StageConfig] = field(default_factory=list)
    """Empty = one stage: the scenario as configured."""
    window: int = 32
    """Finished env episodes over which survival is measured."""
    survival_threshold: float = 0.8
    """Fraction of agent-episodes ending without a faint needed to advance."""


@dataclass
class TrackingConfig:
    """Experiment tracking: off | mlflow (embedded SQLite store) | mlflow_server."""

    backend: TrackingBackend = TrackingBackend.mlflow
    uri: str | None = None
    """mlflow: default sqlite:///<paths.root>/<paths.tracking_db> (or $TOWNLET_TRACKING_URI);
    mlflow_server: required, e.g. http://mlflow.internal:5000."""
    experiment: str | None = None
    """MLflow experiment; default: the entry point's name (train, capture)."""


@dataclass
class BCConfig:
    """Behaviour cloning from the scenario's scripts (`train.source=bc`, `train.anneal`)."""

    demo_envs: int = 64
    """Scripted episodes demonstrated (one per env, all at the scenario's fixed start)."""
    noise: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2])
    """Per-env probability of executing a random action instead of the script's (the state is
    still labelled with the script's action), cycled over the envs."""
    learning_rate: float = 1e-3
    minibatch: int = 2048
    value_coef: float = 0.5
    """Weight of the critic's regression on the demonstrations' discounted return-to-go."""
    capture_dir: str | None = None
    """Clone the scripted capture samples under this directory (any capture run, e.g.
    `experiments/capture.py` output) instead of demonstrating the scripts in memory."""
    accuracy_every: int = 10
    """Epochs between measurements of the policy's accuracy on the demonstrations in an anneal
    schedule, counted within each phase (telemetry only: nothing the run learns depends on it;
    the records in between carry no accuracy). A BC phase's last pass is always measured: the
    gate judges it. A measurement over the default town's 60,000 demonstrations took 95 ms,
    a third of a BC pass (2026-12-07)."""
    ppo_anchor: float = 0.0
    """Weight of the demonstrations' cross-entropy added to every PPO minibatch's loss in an
    anneal schedule's PPO phases (0 = off): fine-tuning stays near what cloning taught unless
    the advantage outweighs it. See docs/guides/training.md ("Learning a life") for what it
    changed."""


@dataclass
class AnnealStageConfig:
    """One phase of the anneal schedule."""

    mode: AnnealMode = AnnealMode.ppo
    """bc (passes over the demonstrations, then the accuracy gate) | ppo (rollout epochs)."""
    epochs: int = 1
    """bc: passes over the demonstrations; ppo: rollout epochs."""


@dataclass
class TrialConfig:
    """Set by the Optuna sweeper for each job it launches, so the job reports its evaluations
    to the study and stops early when the pruner says so. Not for hand use."""

    storage: str | None = None
    """The study's storage URL; None = this job is not an Optuna trial."""
    study: str | None = None
    number: int | None = None
    """The trial's number in the study."""
    pruner: PrunerKind = PrunerKind.none
    """none | median | hyperband (decided in the job from the study's reported values)."""
    startup_trials: int = 2
    """Trials that finish before the median pruner prunes anything."""
    warmup_evaluations: int = 1
    """Evaluations of a trial before it can be pruned."""
    max_evaluations: int = 10
    """Hyperband's maximum resource: evaluations of a full run (total epochs / eval_every)."""


@dataclass
class TrainConfig:
    """The training run (`experiments/train.py`)."""

    total_ticks: int = 20480
    """World ticks to train for; every tick steps num_envs x agents agent-steps."""
    source: DataSource = DataSource.rollout
    """rollout (online) | replay (PPO on a capture directory) | mixed (alternating cycles) |
    bc (behaviour cloning of the scenario's scripts only). With `anneal`, the source of its PPO
    phases (bc is then refused: the schedule says when to clone)."""
    capture_dir: str | None = None
    """Capture run directory (or a folder of them) for replay and mixed."""
    replay_chunk: int = 16
    """Captured samples (of one length) per replay epoch."""
    resume: Any = False
    """false | true (this run directory's latest checkpoint) | a checkpoint path."""
    checkpoint_every: int = 10
    """Epochs between periodic checkpoints (latest.pt is written every epoch)."""
    eval_every: int = 0
    """Epochs between evaluations; 0 = only at the end."""
    eval_episodes: int = 16
    """Episodes per policy at each evaluation, spread over 4 world seeds."""
    return_window: int = 32
    """Finished episodes the telemetry's running return, length and survival are taken over."""
    progress: bool | None = None
    """Progress bar; None = only when stderr is a terminal. Without the bar, a plain progress
    line goes to the job log every progress_every_sec."""
    progress_every_sec: float = 10.0
    profile: bool = False
    """Time each phase (world step, observation, policy, buffers, GAE, update, BC, evaluation,
    recording, checkpoints): `profile_*_sec` keys in telemetry (version 1.3) and the shares in
    the progress line. Off by default: on a GPU each phase then waits for its work."""
    threads: int = 1
    """torch intra-op threads; 0 keeps torch's default. 1 is what the learning benchmark
    measures: on 2 busy cores torch's default of 2 threads ran PPO 25x slower."""
    bc: BCConfig = field(default_factory=BCConfig)
    anneal: list[AnnealStageConfig] = field(default_factory=list)
    """BC and PPO phases run in order (replaces total_ticks); empty = no schedule. A BC phase
    that ends below the accuracy gate rolls the policy back to the last weights that passed
    and skips the PPO phases up to the next BC phase."""
    anneal_threshold: float = 0.9
    """The BC accuracy gate: share of demonstrated states where the policy picks the label."""
    select_every: int = 0
    """PPO epochs between validations of the deterministic policy on held-out world seeds;
    the best validated weights (checkpoints/selected.pt) become the run's policy and are what
    the final evaluation reports. 0 = off: the last weights (townlet/policy/selection.py)."""
    select_episodes: int = 8
    """Episodes per validation, spread over 4 world seeds."""
    trial: TrialConfig = field(default_factory=TrialConfig)


@dataclass
class TelemetryConfig:
    log_frequency: int = 1
    """Write every k-th epoch."""
    max_entries: int = 0
    """Rotate ppo.jsonl after this many records (0 = never)."""


@dataclass
class CaptureConfig:
    """Options of `experiments/capture.py`."""

    ticks: int | None = None
    """Ticks to capture; None = the scenario's own `ticks`."""
    agent: str | None = None
    """Capture only this agent; None = every agent."""
    prefix: str = "rollout_sample"
    compress: bool = False
    """Write compressed NPZ files."""
    auto_seed_agents: bool = False
    """Add placeholder agents (they wait) when the scenario spawns none."""
    auto_seed_count: int = 1
    gamma: float = 0.99
    """Discount of the Monte Carlo value estimates stored as `value_preds` (scripted)."""
    policy: str | None = None
    """A checkpoint path: act with its trained policy instead of the script."""
    deterministic: bool = False
    """With a policy: take its most likely action instead of sampling."""
    record: bool = False
    """Also write the episode as a recording (`recordings/` + `recordings.db` in the output
    folder, reason `capture`), to replay it in the viewer or export it as a video."""


@dataclass
class PathsConfig:
    """Where a job's files go; relative names resolve against `root` (default: the current
    directory), so an installed package writes beside the user, never inside itself."""

    root: str = "."
    outputs: str = "outputs"
    """Hydra run directories: <root>/<outputs>/<date>/<time>."""
    multirun: str = "multirun"
    tracking_db: str = "mlruns.db"
    """The embedded MLflow store (tracking=mlflow) unless tracking.uri or $TOWNLET_TRACKING_URI."""
    optuna_db: str = "optuna.db"
    """The Optuna study storage of hparams_search=optuna."""

    def resolve(self, name: str) -> Path:
        path = Path(getattr(self, name))
        return path if path.is_absolute() else Path(self.root).resolve() / path


@dataclass
class BackgroundSlotConfig:
    """Agents of the scenario driven by something other than the learner."""

    agents: list[str] = field(default_factory=list)
    """Agent ids from `scenario.agents` (e.g. [bob, dave])."""
    source: PartnerSource = PartnerSource.scripted
    """scripted: the agent's own script; random: uniform over allowed actions; checkpoint: the
    policy of another run's checkpoint (frozen, acting deterministically)."""
    checkpoint: str | None = None
    """A checkpoint file (.pt) when source=checkpoint; loaded with the project's safe loader."""


@dataclass
class PopulationConfig:
    """Who acts beside whom: every agent not listed under `background` is focal (driven by the
    policy being trained or evaluated); background agents act from their own source inside the
    same world step and never enter the PPO batch."""

    name: str = "learner"
    background: list[BackgroundSlotConfig] = field(default_factory=list)


@dataclass
class TownletConfig:
    """The root: the first entry of every defaults list, so every key is typed."""

    world: WorldConfig = field(default_factory=WorldConfig)
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    population: PopulationConfig = field(default_factory=PopulationConfig)
    seed: int = II("scenario.seed")


@dataclass
class VideoSettings:
    """How an episode becomes a video: the one list of options for `experiments/export.py`,
    `townlet video export|batch` and the exporter itself."""

    fps: int = 30
    speed: float = 1.0
    """Playback speed: 1 = 5 steps per second."""
    style: VideoStyle = VideoStyle.dark
    preset: str = "1080p"
    """Frame size: 1080p | 1440p."""
    dpi: int | None = None
    """Frame size 16*dpi x 9*dpi instead of a preset."""
    start: int = 0
    """First step."""
    end: int | None = None
    """The step after the last (default: the episode's end)."""
    days: str | None = None
    """A range of the episode's days instead of steps, e.g. "2-3" or "5": day 1 runs from the
    first step to the first midnight, each later day from a midnight to the next."""
    quality: VideoQuality = VideoQuality.fast
    """fast: libx264 ultrafast for previews; quality: medium for sharing."""
    agent: str | None = None
    """The agent whose meters the chart draws over time (default: the first recorded)."""


@dataclass
class ExportConfig(VideoSettings):
    """`experiments/export.py`: one recorded episode of a run directory to MP4."""

    run_dir: str = MISSING
    episode_id: int = MISSING
    output: str | None = None
    """Default: <run_dir>/videos/episode_<id>.mp4."""


@dataclass
class ServeOptionsConfig:
    port: int = 8766
    host: str = "127.0.0.1"
    step_delay: float = 0.2
    """Seconds between steps at speed 1 (5 steps/s)."""
    token: str | None = None
    """Required when host is not localhost; clients pass it as ?token=."""
    record_live: bool = False
    """Record every live-mode episode into the run's recordings (like training's recorder)."""
    allowed_origins: list[str] = field(default_factory=list)
    """Web origins (scheme://host:port) besides the viewer page's own that may open the
    WebSocket; browsers on any other page are refused."""
    allowed_hosts: list[str] = field(default_factory=list)
    """Host names (without port) besides loopback ones that requests may name in their Host
    header when no token is set; anything else is refused (a DNS-rebinding page names its own)."""
    max_episode_mb: float = 64.0
    """An episode larger than this (decompressed) is refused with an error reply."""
    cache_mb: float = 256.0
    """Memory for opened episodes kept ready to play (least recently used goes first)."""


@dataclass
class ServeConfig:
    """`experiments/serve.py`: serve one run (run_dir) or every run under a folder (runs_root)."""

    run_dir: str | None = None
    runs_root: str | None = None
    serve: ServeOptionsConfig = field(default_factory=ServeOptionsConfig)
