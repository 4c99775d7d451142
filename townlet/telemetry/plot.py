"""`plot`: chosen keys against epoch, one panel each, as a PNG."""

from __future__ import annotations

from pathlib import Path

from townlet.telemetry.reader import TelemetryError, iter_records

DEFAULT_KEYS = ("loss_total", "kl_divergence")
# What training draws into telemetry/ppo.png: how the agents do, then how the learner does.
TRAINING_KEYS = (
    "episodic_return",
    "survival_rate",
    "shift_on_time_events",
    "faint_events",
    "events.completed.Bed",
    "batch_entropy_mean",
    "explained_variance",
    "anneal_bc_accuracy",
    "loss_total",
    "kl_divergence",
)


def default_output(log: Path, keys: tuple[str, ...] | None = None) -> Path:
    """Next to the log: ppo.jsonl -> ppo.png (the training plot), or ppo.<keys>.png for chosen
    keys, so a plot of other keys never silently replaces the training plot."""
    stem = log.name.split(".")[0]
    suffix = "" if keys is None else "." + "-".join(k.replace("/", "_") for k in keys)[:80]
    return log.with_name(f"{stem}{suffix}.png")


def plot(
    log: Path,
    output: Path | None = None,
    keys: tuple[str, ...] = DEFAULT_KEYS,
    skip_missing: bool = False,
    evaluation: list[dict] | None = None,
) -> Path:
    """`skip_missing` leaves out keys no record has (the training plot); otherwise one is an
    error. `evaluation` (rows of evaluation_history.jsonl) adds a panel of evaluation returns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs: list[float] = []
    series: dict[str, list[float]] = {k: [] for k in keys}
    for _, record in iter_records(log):
        epochs.append(record.get("epoch", len(epochs) + 1))
        for key in keys:
            value = record.get(key, float("nan"))
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            series[key].append(value if numeric else float("nan"))
    for key, values in list(series.items()):
        if all(v != v for v in values):  # every value NaN: the key is in no record
            if not skip_missing:
                raise TelemetryError(f"{log}: no record has key '{key}'")
            del series[key]
    output = Path(output) if output else default_output(Path(log))
    panels = len(series) + (1 if evaluation else 0)
    figure, axes = plt.subplots(panels, 1, figsize=(8, 2.2 * panels), sharex=True, squeeze=False)
    for axis, key in zip(axes[:, 0], series, strict=False):
        axis.plot(epochs, series[key], linewidth=1.4)
        axis.set_ylabel(key, fontsize=8)
        axis.grid(alpha=0.3)
    if evaluation:
        axis = axes[-1, 0]
        for who in ("policy_deterministic", "policy_sampled", "scripted", "random"):
            points = [(row["epoch"], row[who]["return_mean"]) for row in evaluation if row.get(who)]
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", linewidth=1.2, label=who)
        axis.set_ylabel("evaluation return", fontsize=8)
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("epoch")
    figure.suptitle(Path(log).name)
    figure.tight_layout()
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(output, dpi=100)
    except OSError as error:
        raise TelemetryError(
            f"{output}: cannot write the plot ({error.strerror or error})"
        ) from None
    finally:
        plt.close(figure)
    return output
