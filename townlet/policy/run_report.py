"""What a training run tells its user: progress lines while it runs and the summary at its end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from townlet.policy.evaluate import format_table
from townlet.util.run_dir import RunDir


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
    selection: dict[str, Any] | None = None  # Selection.summary() when train.select_every > 0

    @property
    def selected_epoch(self) -> int | None:
        """The epoch whose weights are the run's policy, when chosen by validation."""
        return self.selection.get("epoch") if self.selection else None

    @property
    def objective(self) -> float:
        """What a sweeper maximises: the deterministic policy's evaluation return."""
        return self.evaluation["policy_deterministic"]["return_mean"]


def flatten_numbers(tree: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested evaluation numbers as dotted metric names (None and empty parts left out)."""
    flat: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten_numbers(value, f"{prefix}{key}."))
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
    if record.get("profile_wall_sec"):
        parts.append(profile_shares(record))
    return ", ".join(parts)


def profile_shares(record: dict[str, Any]) -> str:
    """The profiled phases' shares of the wall time, largest first (those of 1% or more)."""
    wall = record["profile_wall_sec"]
    shares = {
        key.removeprefix("profile_").removesuffix("_sec"): value / wall
        for key, value in record.items()
        if key.startswith("profile_") and key != "profile_wall_sec"
    }
    ranked = sorted(shares.items(), key=lambda item: -item[1])
    return "time: " + " ".join(f"{name} {share:.0%}" for name, share in ranked if share >= 0.01)


def describe(result: TrainResult, command: str = "python experiments/train.py") -> str:
    """The end of a run: where it is, what it left, how the policy did and what to run next."""
    ev, run = result.evaluation, result.output_dir
    scripted = ev.get("scripted")
    policy, sampled = ev["policy_deterministic"], ev["policy_sampled"]
    files = ["checkpoints/latest.pt"]
    if RunDir.of(run).best.exists():
        files.append(f"checkpoints/best.pt (epoch {result.best_epoch})")
    if result.selected_epoch is not None:
        files.append(
            f"checkpoints/selected.pt (epoch {result.selected_epoch}, the best of "
            f"{result.selection['validations']} validations: the policy evaluated below)"
        )
    files += [f for f in ("telemetry/ppo.jsonl", "telemetry/ppo.png") if (run / f).exists()]
    files.append("evaluation.json")
    if result.recordings is not None:
        files.append(f"{result.recordings} recorded episode(s)")
    policy_file = "latest.pt" if result.selected_epoch is None else "selected.pt"
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
        f"  townlet evaluate {run / 'checkpoints' / policy_file}",
        f"  {command.replace('train', 'serve')} run_dir={run}"
        + ("" if result.recordings else "   (live policy; add recording=periodic to record)"),
        "  mlflow ui --backend-store-uri sqlite:///mlruns.db   (tracking=mlflow), then open",
        "    http://127.0.0.1:5000/#/experiments?workflowType=machine_learning",
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
        f"chats/agent-day {behaviour['chats_per_agent_day']:.2f}",
        *(f"{kind} {count:.2f}" for kind, count in done.items() if count > 0),
    ]
    return ", ".join(parts) + " (completions per agent-day)"
