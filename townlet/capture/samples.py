"""Cut a trace into per-agent replay samples and compute each sample's metrics.

A sample runs from the first tick to the agent's own end (faint or truncation), so it holds
no transitions after the agent is down. `value_preds` are the behaviour's own value estimates
when it has a critic (a trained policy); for the script they are Monte Carlo estimates: the
discounted return actually realised from each observation within the capture, with a 0
bootstrap at the end (exact after a faint, a documented assumption after truncation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from townlet.capture.trace import EpisodeTrace
from townlet.policy.event_counts import count_events, meal_types
from townlet.telemetry.schema import EVENT_PREFIX
from townlet.util.event_codes import ChatEvent, RentEvent
from townlet.world import World
from townlet.world.constants import ACTION_NAMES
from townlet.world.events import AGENT, TICK_EVENTS


@dataclass
class Sample:
    agent_index: int
    agent_id: str
    arrays: dict[str, np.ndarray]
    metrics: dict[str, float]
    terminated: bool


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """(T,) -> (T + 1,) return-to-go with a 0 bootstrap at the end."""
    out = torch.zeros(rewards.shape[0] + 1, dtype=torch.float64)
    for t in range(rewards.shape[0] - 1, -1, -1):
        out[t] = rewards[t] + gamma * out[t + 1]
    return out.float()


def agent_length(trace: EpisodeTrace, agent: int) -> int:
    done = (trace.terminated[:, agent] | trace.truncated[:, agent]).nonzero()
    return int(done[0]) + 1 if len(done) else trace.ticks


def build_sample(world: World, trace: EpisodeTrace, agent: int, gamma: float) -> Sample:
    t = agent_length(trace, agent)
    codes = trace.map_codes[:t, agent]
    rewards = trace.rewards[:t, agent]
    dones = (trace.terminated[:t, agent] | trace.truncated[:t, agent]).clone()
    terminated = bool(trace.terminated[:t, agent].any())
    if trace.values is None:
        values = discounted_returns(rewards, gamma)
    else:
        bootstrap = torch.zeros(1) if terminated else trace.values[t, agent].view(1)
        values = torch.cat((trace.values[:t, agent], bootstrap)).float()
    arrays = {
        "map": world.observer.dense_channels(codes).numpy(),
        "features": trace.features[:t, agent].numpy(),
        "action_masks": trace.action_masks[:t, agent].numpy(),
        "actions": trace.actions[:t, agent].numpy().astype(np.int64),
        "old_log_probs": trace.log_probs[:t, agent].numpy().astype(np.float32),
        "value_preds": values.numpy(),
        "rewards": rewards.numpy().astype(np.float32),
        "dones": dones.numpy(),
    }
    return Sample(
        agent_index=agent,
        agent_id=world.layout.agent_ids[agent],
        arrays=arrays,
        metrics=sample_metrics(world, trace, agent, t, values),
        terminated=terminated,
    )


COUNTED = {
    "contention_events": "queue_conflict_events",
    "contention_intensity": "queue_conflict_intensity_sum",
    "on_time_events": "shift_on_time_events",
    "late_events": "shift_late_events",
    "absent_events": "shift_absent_events",
    "chat_success": "chat_success_events",
    "chat_failure": "chat_failure_events",
    "late_help_received": "late_help_events",
    "shift_takeovers": "shift_takeover_events",
}
"""Capture (and golden) metric <- the `count_events` counter it is, over one agent's ticks:
one counting function for telemetry, evaluation, demonstrations and captures."""


def agent_counts(world: World, trace: EpisodeTrace, agent: int, t: int) -> dict[str, float]:
    """`count_events` over agent `agent`'s first `t` ticks of the trace."""
    events = {name: series[:t] for name, series in trace.events.items()}
    rows = torch.zeros(t, world.layout.num_agents, dtype=torch.bool)
    rows[:, agent] = True
    return count_events(
        events, world.layout.num_agents, world.names, meal_types(world.layout), rows
    )


def sample_metrics(
    world: World, trace: EpisodeTrace, agent: int, t: int, values: torch.Tensor
) -> dict[str, float]:
    """Flat, named per-sample metrics (what golden files and expectations compare)."""
    layout, names = world.layout, world.names
    rewards = trace.rewards[:t, agent].double()
    actions = trace.actions[:t, agent]
    events = {e.name: trace.events[e.name][:t, agent] for e in TICK_EVENTS if e.scope == AGENT}
    counts = agent_counts(world, trace, agent, t)

    def counted(key: str) -> int:
        return int(counts[COUNTED[key]])

    features = trace.features[:t, agent]
    shift_cols = [names.features.index(f"shift_{s}") for s in ("on_time", "late", "absent")]
    rivalry = trace.rivalry_max[:t, agent].double()
    chat, quality = events["chat"], events["chat_quality"].double()
    chatted = chat != ChatEvent.NONE
    metrics: dict[str, float] = {
        "timesteps": t,
        "reward_sum": float(rewards.sum()),
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std(unbiased=False)),
        "log_prob_mean": float(trace.log_probs[:t, agent].double().mean()),
        "value_pred_mean": float(values[:-1].double().mean()),
        "contention_events": counted("contention_events"),
        "contention_intensity": float(counts[COUNTED["contention_intensity"]]),
        "rivalry_max_mean": float(rivalry.mean()),
        "rivalry_max_max": float(rivalry.max()),
        "rivalry_max_final": float(rivalry[-1]),
        "on_time_ticks": int(features[:, shift_cols[0]].sum()),
        "late_ticks": int(features[:, shift_cols[1]].sum()),
        "absent_ticks": int(features[:, shift_cols[2]].sum()),
        "on_time_events": counted("on_time_events"),
        "late_events": counted("late_events"),
        "absent_events": counted("absent_events"),
        "shift_penalty": float(trace.shift_penalty[:t, agent].double().sum()),
        "wage_earned": float(events["wage"].double().sum()),
        "faints": int(trace.terminated[:t, agent].sum()),
        "chat_success": counted("chat_success"),
        "chat_failure": counted("chat_failure"),
        "chat_quality_mean": float(quality[chatted].mean()) if bool(chatted.any()) else 0.0,
        "late_help_received": counted("late_help_received"),
        "help_reward": float(trace.help_reward[:t, agent].double().sum()),
        "shift_takeovers": counted("shift_takeovers"),
        "familiarity_max_final": float(trace.familiarity_max[t - 1, agent]),
        "completions_total": sum(
            int(counts[f"{EVENT_PREFIX}{name}"]) for name in layout.affordance_types
        ),
    }
    for i, name in enumerate(ACTION_NAMES):
        metrics[f"action_counts.{name}"] = int((actions == i).sum())
    for name in layout.affordance_types:
        metrics[f"completions.{name}"] = int(counts[f"{EVENT_PREFIX}{name}"])
    for utility in layout.utility_names:  # ticks the agent saw the utility out
        column = names.features.index(f"outage_{utility}")
        metrics[f"outage_ticks.{utility}"] = int(features[:, column].sum())
    if world.calendar.observed:  # a multi-day town: the week's own figures
        metrics.update(week_metrics(world, trace, agent, t))
    start, end = trace.meters[0, agent], trace.meters[t, agent]
    for i, name in enumerate(layout.meter_names):
        metrics[f"meter_start.{name}"] = float(start[i])
        metrics[f"meter_end.{name}"] = float(end[i])
        metrics[f"meter_gain.{name}"] = float(end[i] - start[i])
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}


def week_metrics(world: World, trace: EpisodeTrace, agent: int, t: int) -> dict[str, float]:
    """Rent paid and missed, working days, and leisure on days off (completions of the
    affordance types that raise the social meter) in a multi-day episode."""
    layout, rent = world.layout, trace.events["rent"][:t, agent]
    social = layout.meter_names.index("social") if "social" in layout.meter_names else -1
    leisure = [
        i
        for i, name in enumerate(layout.affordance_types)
        if social >= 0 and world.config.affordances[name].effects.get("social", 0.0) > 0
    ]
    completed, off = trace.events["completed"][:t, agent], ~trace.works[:t, agent]
    tpd = layout.ticks_per_day
    return {
        "rent_paid": int((rent == RentEvent.PAID).sum()),
        "rent_missed": int((rent == RentEvent.MISSED).sum()),
        "days_worked": int(trace.works[:t:tpd, agent].sum()),
        "weekend_leisure": int((torch.isin(completed, torch.tensor(leisure)) & off).sum()),
    }
