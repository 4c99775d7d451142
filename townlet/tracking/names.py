"""MLflow metric names grouped like CleanRL's (`charts/`, `losses/`, `eval/` ...), so the charts
a user looks at first are not buried among eighty alphabetical keys."""

from __future__ import annotations

from typing import Any

# (group, key prefixes), first match wins; anything else is a world event counter.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "charts",
        ("episodic_", "survival_rate", "episodes_", "curriculum_stage", "steps", "lr"),
    ),
    (
        "losses",
        (
            "loss_",
            "kl_divergence",
            "clip_",
            "grad_norm",
            "explained_variance",
            "adv_",
            "batch_entropy",
            "reward_advantage_corr",
        ),
    ),
    (
        "perf",
        ("epoch_duration_sec", "rollout_sec", "update_sec", "transitions", "updates", "profile_"),
    ),
    ("meta", ("telemetry_version", "log_stream_offset", "cycle_id", "epoch", "rollout_ticks")),
    ("anneal", ("anneal_",)),
    ("baseline", ("baseline_",)),
    ("conflict", ("conflict.",)),
    ("recording", ("recording_", "recordings_")),
    ("week", ("weekday.", "rent_")),
)


def metric_name(key: str) -> str:
    """`loss_total` -> `losses/loss_total`; `eval.scripted.return_mean` -> `eval/scripted/...`."""
    if key.startswith("eval."):
        return key.replace(".", "/")
    for group, prefixes in GROUPS:
        if key.startswith(prefixes):
            return f"{group}/{key}"
    return f"events/{key}"


def grouped(metrics: dict[str, Any]) -> dict[str, Any]:
    return {metric_name(k): v for k, v in metrics.items()}
