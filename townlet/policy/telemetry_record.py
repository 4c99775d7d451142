"""Assemble one epoch record (telemetry_version 1.1 plus our additions) from an epoch's data.

Event counters count real world events from the rollout: contention (queue conflicts),
shared meals, shift arrivals and absences, faints, chats, late help, shift takeovers, utility
outages and completions per affordance type.
"""

from __future__ import annotations

from typing import Any

import torch

from townlet.policy.epoch import EpochData, UpdateResult
from townlet.policy.event_counts import count_events
from townlet.world import WorldNames

# What data without world events (behaviour cloning passes) reports for the social keys.
NO_SOCIAL_EVENTS: dict[str, float] = {
    "late_help_events": 0,
    "shift_takeover_events": 0,
    "chat_success_events": 0,
    "chat_failure_events": 0,
    "chat_quality_mean": 0.0,
}


def _corr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson correlation; 0 when either side is (numerically) constant."""
    if len(x) < 2:
        return 0.0
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denominator = float((x.square().sum() * y.square().sum()).sqrt())
    if denominator < 1e-12:
        return 0.0
    return max(-1.0, min(1.0, float((x * y).sum()) / denominator))


def _explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    if len(returns) < 2:
        return 0.0
    var = float(returns.var())
    return 0.0 if var == 0.0 else 1.0 - float((returns - values).var()) / var


def rollout_events(
    events: dict[str, torch.Tensor],
    features: torch.Tensor,
    agents: int,
    names: WorldNames,
    meal_types: tuple[int, ...],
) -> dict[str, float]:
    """Event counters (`count_events`) and rivalry statistics of a rollout's ticks; `features`
    (T, E * A, F) are the observations the rivalry statistics read."""
    t = features.shape[0]
    per_agent = features.view(t, -1, agents, features.shape[-1])
    return {
        **count_events(events, agents, names, meal_types),
        **rivalry_statistics(per_agent, names),
    }


def rivalry_statistics(features: torch.Tensor, names: WorldNames) -> dict[str, float]:
    """features (T, E, A, F): tick averages of per-env agent mean / max rivalry and avoid count."""
    riv = features[..., names.features.index("rivalry_max")]
    avoid = features[..., names.features.index("rivalry_avoid_count")]
    return {
        "conflict.rivalry_max_mean_avg": float(riv.mean(-1).mean()),
        "conflict.rivalry_max_max_avg": float(riv.amax(-1).mean()),
        "conflict.rivalry_avoid_count_mean_avg": float(avoid.mean(-1).mean()),
        "conflict.rivalry_avoid_count_max_avg": float(avoid.amax(-1).mean()),
    }


def epoch_record(
    data: EpochData,
    update: UpdateResult,
    *,
    epoch: int,
    steps: int,
    cycle_id: int,
    duration: float,
    rollout_ticks: int,
    episode_stats: dict[str, Any],
    stage: int,
) -> dict[str, Any]:
    """One PPO epoch's record from its data and its update; `steps` and `cycle_id` are the
    run's counters after the epoch, `episode_stats` the finished-episode window's keys."""
    batch, stats, kl = data.batch, update.stats, update.kl
    entropy, flat_rewards = data.entropy, data.rewards
    adv = batch.advantages
    record: dict[str, Any] = {
        "epoch": epoch,
        "updates": int(stats.get("updates", 0)),
        "transitions": len(batch),
        "loss_policy": stats.get("loss_policy", 0.0),
        "loss_value": stats.get("loss_value", 0.0),
        "loss_entropy": stats.get("loss_entropy", 0.0),
        "loss_total": stats.get("loss_total", 0.0),
        "clip_fraction": stats.get("clip_fraction", 0.0),
        "data_mode": data.mode,
        "adv_mean": float(adv.mean()) if len(adv) else 0.0,
        "adv_std": float(adv.std()) if len(adv) > 1 else 0.0,
        "grad_norm": stats.get("grad_norm", 0.0),
        "kl_divergence": kl,
        "lr": update.lr,
        "steps": steps,
        "adv_zero_std_batches": int(stats.get("adv_zero_std_batches", 0)),
        "adv_min_std": stats.get("adv_min_std", 0.0),
        "clip_triggered_minibatches": int(stats.get("clip_triggered_minibatches", 0)),
        "clip_fraction_max": stats.get("clip_fraction_max", 0.0),
        "epoch_duration_sec": duration,
        "cycle_id": cycle_id,
        "batch_entropy_mean": float(entropy.mean()) if len(entropy) else 0.0,
        "batch_entropy_std": float(entropy.std()) if len(entropy) > 1 else 0.0,
        "grad_norm_max": stats.get("grad_norm_max", 0.0),
        "kl_divergence_max": max(stats.get("kl_divergence_max", 0.0), kl),
        "reward_advantage_corr": _corr(flat_rewards, adv),
        "rollout_ticks": rollout_ticks,
        **NO_SOCIAL_EVENTS,
        **data.events,
        # our additions
        "explained_variance": _explained_variance(batch.values, batch.returns),
        "steps_per_sec": data.agent_steps / duration if duration > 0 else 0.0,
        "rollout_sec": data.acting_sec,
        "update_sec": update.seconds,
        **episode_stats,  # running means over finished episodes: never a 0.0 for "none ended"
        "curriculum_stage": stage,
        **(data.baseline or {}),
    }
    return record


def bc_record(
    *,
    epoch: int,
    stats: dict[str, float],
    lr: float,
    steps: int,
    cycle_id: int,
    duration: float,
    transitions: int,
    events: dict[str, float],
    rollout_ticks: int,
    episode_stats: dict[str, Any],
    stage: int,
) -> dict[str, Any]:
    """A behaviour-cloning epoch, in the same record shape (`data_mode: bc`).

    `loss_policy` is the cloning cross-entropy and `loss_value` the critic's regression on the
    demonstrations' returns; no advantages, ratios or behaviour KL exist in a BC pass, so those
    keys (required by the format) are 0 and mean "not applicable" under data_mode bc. Event
    counters describe the demonstrations the pass trained on."""
    return {
        "epoch": epoch,
        "updates": int(stats["updates"]),
        "transitions": transitions,
        "loss_policy": stats["loss_bc"],
        "loss_value": stats["loss_value"],
        "loss_entropy": stats["entropy"],
        "loss_total": stats["loss_total"],
        "clip_fraction": 0.0,
        "data_mode": "bc",
        "adv_mean": 0.0,
        "adv_std": 0.0,
        "grad_norm": stats["grad_norm"],
        "kl_divergence": 0.0,
        "lr": lr,
        "steps": steps,
        "adv_zero_std_batches": 0,
        "adv_min_std": 0.0,
        "clip_triggered_minibatches": 0,
        "clip_fraction_max": 0.0,
        "epoch_duration_sec": duration,
        "cycle_id": cycle_id,
        "batch_entropy_mean": stats["entropy"],
        "batch_entropy_std": stats["entropy_std"],
        "grad_norm_max": stats["grad_norm_max"],
        "kl_divergence_max": 0.0,
        "reward_advantage_corr": 0.0,
        "rollout_ticks": rollout_ticks,
        **NO_SOCIAL_EVENTS,
        **events,
        "update_sec": duration,
        **episode_stats,
        "curriculum_stage": stage,
    }
