"""`capture(cfg, output_dir)`: run a scenario under its script and write replay samples.

Writes, atomically, into the run directory: one NPZ per agent (`<prefix>_<agent>_<nnn>.npz`)
with a JSON sidecar, `<prefix>_manifest.json` and `<prefix>_metrics.json`; with
`capture.record=true` also the episode as a recording (`recordings/`, `recordings.db`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig

from townlet.capture.behaviour import MixedBehaviour, PolicyBehaviour, ScriptedBehaviour
from townlet.capture.samples import Sample, build_sample
from townlet.capture.trace import EpisodeTrace, run_episode
from townlet.config.hashing import config_hash
from townlet.config.schema import AgentConfig, RecordingConfig, ScenarioConfig, TownletConfig
from townlet.policy.population import Background, focal_agents, source_names
from townlet.policy.population import describe as describe_population
from townlet.recording.recorder import EpisodeRecorder
from townlet.scenarios.build import typed
from townlet.scenarios.controller import validate_scripts
from townlet.scenarios.expectations import ExpectationResult, check_expectations
from townlet.util.atomic import atomic_save_npz, atomic_write_json
from townlet.world import ConfigError, World
from townlet.world.constants import ACTION_NAMES

SAMPLE_INDEX = 0  # one scripted episode per capture run
Behaviour = ScriptedBehaviour | PolicyBehaviour | MixedBehaviour


@dataclass
class CaptureResult:
    scenario: str
    output_dir: Path
    samples: list[Sample]
    files: list[str]
    expectations: list[ExpectationResult]
    trace: EpisodeTrace
    world: World
    seconds: float
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def seed_placeholder_agents(scenario: ScenarioConfig, count: int) -> None:
    """Add `count` waiting agents on the first free floor tiles (row-major, deterministic)."""
    blocked = {tuple(a.pos) for a in scenario.affordances}
    walls = set()
    for entry in scenario.walls:
        x0, y0, x1, y1 = (*entry, *entry) if len(entry) == 2 else entry
        walls |= {
            (x, y)
            for x in range(min(x0, x1), max(x0, x1) + 1)
            for y in range(min(y0, y1), max(y0, y1) + 1)
        }
    free = [
        (x, y)
        for y in range(scenario.height)
        for x in range(scenario.width)
        if (x, y) not in walls and (x, y) not in blocked
    ]
    if len(free) < count:
        raise ConfigError(f"scenario '{scenario.name}': no room for {count} placeholder agents")
    scenario.agents = [AgentConfig(id=f"placeholder_{i}", pos=list(free[i])) for i in range(count)]


def capture(cfg: DictConfig | TownletConfig, output_dir: Path) -> CaptureResult:
    """Run the configured scenario under its script and write the samples."""
    started = time.perf_counter()
    config = typed(cfg) if isinstance(cfg, DictConfig) else cfg
    options, scenario = config.capture, config.scenario
    _prepare_scenario(config)
    world = World(config.world, scenario, num_envs=1, seed=config.seed)
    behaviour, focal = _behaviour(config, world)
    digest = config_hash(cfg)
    recorder = _recorder(config, world, output_dir, digest) if options.record else None
    trace = run_episode(world, behaviour, scenario.ticks, recorder)
    if recorder is not None:
        returns = trace.rewards.sum(0)
        recorder.end_episode(0, stage=1, returns=returns, reasons=["capture"])
        errors = recorder.close()
        if errors:
            raise RuntimeError(errors[0])
    agents = world.layout.agent_ids
    samples = [build_sample(world, trace, i, options.gamma) for i in range(len(agents))]
    metrics_by_agent = {s.agent_id: s.metrics for s in samples}
    expectations = check_expectations(list(scenario.expect), metrics_by_agent)
    chosen = [
        s
        for i, s in enumerate(samples)
        if (options.agent is None or s.agent_id == options.agent) and focal[i]
    ]
    output_dir.mkdir(parents=True, exist_ok=True)
    files, manifest_rows, metrics = _write_samples(
        config, world, behaviour, chosen, output_dir, digest
    )
    _write_indexes(config, output_dir, digest, trace.ticks, manifest_rows, metrics, expectations)
    return CaptureResult(
        scenario=scenario.name,
        output_dir=output_dir,
        samples=chosen,
        files=files,
        expectations=expectations,
        trace=trace,
        world=world,
        seconds=time.perf_counter() - started,
        metrics=metrics,
    )


def _prepare_scenario(config: TownletConfig) -> None:
    """The capture's length and, when asked, placeholder agents for a scenario without any."""
    options, scenario = config.capture, config.scenario
    if options.ticks is not None:
        if options.ticks < 1:
            raise ConfigError(f"capture.ticks: must be >= 1, got {options.ticks}")
        scenario.ticks = options.ticks
    if not scenario.agents:
        if not options.auto_seed_agents:
            raise ConfigError(
                f"scenario '{scenario.name}': spawns no agents; set capture.auto_seed_agents=true "
                "to add placeholders"
            )
        seed_placeholder_agents(scenario, options.auto_seed_count)


def _behaviour(config: TownletConfig, world: World) -> tuple[Behaviour, torch.Tensor]:
    """Who acts (the scripts, or `capture.policy`; a population's background beside them)
    and which agents are focal, after checking `capture.agent`."""
    options, scenario = config.capture, config.scenario
    scripts = [list(agent.script) for agent in scenario.agents]
    validate_scripts(world, scripts, scenario.name)
    agents = list(world.layout.agent_ids)
    if options.agent is not None and options.agent not in agents:
        raise ConfigError(
            f"capture.agent: unknown agent '{options.agent}' (agents: {', '.join(agents)})"
        )
    if options.policy is not None:
        behaviour = PolicyBehaviour(world, Path(options.policy), config.seed, options.deterministic)
    else:
        behaviour = ScriptedBehaviour(world, scripts)
    focal = focal_agents(config)
    if config.population.background:  # background agents act, only focal ones are samples
        behaviour = MixedBehaviour(behaviour, Background(world, config, config.seed), focal)
        if options.agent is not None and not focal[agents.index(options.agent)]:
            raise ConfigError(f"capture.agent: {options.agent} is a background agent")
    return behaviour, focal


def _write_samples(
    config: TownletConfig,
    world: World,
    behaviour: Behaviour,
    chosen: list[Sample],
    output_dir: Path,
    digest: str,
) -> tuple[list[str], list[dict], dict[str, dict]]:
    """Each chosen sample's arrays and sidecar; returns (files, manifest rows, metrics)."""
    options, names = config.capture, world.names
    files, manifest_rows, metrics = [], [], {}
    for sample in chosen:
        stem = f"{options.prefix}_{sample.agent_id}_{SAMPLE_INDEX:03d}"
        size = atomic_save_npz(output_dir / f"{stem}.npz", sample.arrays, options.compress)
        meta = {
            "scenario": config.scenario.name,
            "seed": config.seed,
            "config_hash": digest,
            "agent_id": sample.agent_id,
            "sample_index": SAMPLE_INDEX,
            "timesteps": int(sample.metrics["timesteps"]),
            "terminated": sample.terminated,
            "feature_names": list(names.features),
            "map_channel_names": list(names.dense_channels),
            "action_names": {str(i): name for i, name in enumerate(ACTION_NAMES)},
            "meter_names": list(names.meters),
            "window": world.layout.window,
            "affordance_types": list(names.affordance_types),
            "behaviour_policy": behaviour.name,
            "old_log_probs": behaviour.log_probs_meaning,
            "value_preds": behaviour.values_meaning,
            "gamma": options.gamma,
            "compressed": options.compress,
        }
        atomic_write_json(output_dir / f"{stem}.json", meta)
        files.append(f"{stem}.npz")
        metrics[f"{stem}.npz"] = sample.metrics
        manifest_rows.append(
            {
                "sample": f"{stem}.npz",  # the key the system we replace reads
                "meta": f"{stem}.json",
                "agent_id": sample.agent_id,
                "timesteps": meta["timesteps"],
                "bytes": size,
            }
        )
    return files, manifest_rows, metrics


def _write_indexes(
    config: TownletConfig,
    output_dir: Path,
    digest: str,
    ticks: int,
    manifest_rows: list[dict],
    metrics: dict[str, dict],
    expectations: list[ExpectationResult],
) -> None:
    """The run's manifest (its samples) and metrics (with the scenario's expectations)."""
    prefix, name = config.capture.prefix, config.scenario.name
    atomic_write_json(
        output_dir / f"{prefix}_manifest.json",
        {
            "scenario": name,
            "seed": config.seed,
            "config_hash": digest,
            "ticks": ticks,
            "samples": manifest_rows,
            **(
                {"population": describe_population(config.population)}
                if config.population.background
                else {}
            ),
        },
    )
    atomic_write_json(
        output_dir / f"{prefix}_metrics.json",
        {
            "scenario": name,
            "seed": config.seed,
            "config_hash": digest,
            "samples": metrics,
            "expectations": [r.as_dict() for r in expectations],
        },
    )


def _recorder(
    config: TownletConfig, world: World, output_dir: Path, digest: str
) -> EpisodeRecorder:
    """A recorder for the capture's one episode, every agent, written beside the samples."""
    output_dir.mkdir(parents=True, exist_ok=True)
    return EpisodeRecorder(
        RecordingConfig(enabled=True),
        output_dir,
        world,
        run_id=f"capture:{config.scenario.name}",
        seed=config.seed,
        config_hash=digest,
        owner="capture",
        sources=source_names(config) if config.population.background else None,
    )


def describe(result: CaptureResult) -> str:
    lines = [
        f"captured {result.scenario}: {result.trace.ticks} ticks, {len(result.files)} sample(s) "
        f"in {result.seconds:.2f}s -> {result.output_dir}"
    ]
    for file, m in result.metrics.items():
        lines.append(
            f"  {file}: {m['timesteps']} steps, reward {m['reward_sum']:+.3f}, "
            f"completions {m['completions_total']}, contention {m['contention_events']}"
        )
    failed = [r for r in result.expectations if not r.ok]
    lines.append(
        f"expectations: {len(result.expectations) - len(failed)}/{len(result.expectations)} hold"
    )
    lines += [f"  FAILED {r.message}" for r in failed]
    return "\n".join(lines)


def track_capture(result: CaptureResult, tracker) -> None:
    """Per-sample metrics, their drift from the golden file, and the capture's files."""
    from townlet.golden import DEFAULT_GOLDEN, load_golden
    from townlet.golden.compare import compare_sample, drift_table

    for file, metrics in result.metrics.items():
        agent = file.rsplit("_", 1)[0].split("_", 2)[-1]
        tracker.log_metrics({f"{agent}.{k}": v for k, v in metrics.items()})
    golden = load_golden(DEFAULT_GOLDEN).get(result.scenario) if DEFAULT_GOLDEN.exists() else None
    if golden is not None:
        drifts, compared = [], 0
        for file, metrics in result.metrics.items():
            if file in golden:
                n, found = compare_sample(result.scenario, file, golden[file], metrics)
                compared, drifts = compared + n, drifts + found
        tracker.log_metrics({"golden.metrics_compared": compared, "golden.drifted": len(drifts)})
        table = result.output_dir / "golden_comparison.txt"
        table.write_text((drift_table(drifts) if drifts else "no drift") + "\n")
        tracker.log_artifact(table)
        tracker.set_tags({"golden": "drift" if drifts else "match"})
    for name in ("manifest", "metrics"):
        tracker.log_artifact(result.output_dir / f"rollout_sample_{name}.json")
