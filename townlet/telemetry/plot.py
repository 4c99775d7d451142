"""`plot`: chosen keys against epoch, one panel each, as a PNG."""

from __future__ import annotations

from pathlib import Path

from townlet.telemetry.reader import TelemetryError, iter_records

DEFAULT_KEYS = ("loss_total", "kl_divergence")


def default_output(log: Path) -> Path:
    """Next to the log: ppo.jsonl -> ppo.png."""
    return log.with_name(log.name.split(".")[0] + ".png")


def plot(log: Path, output: Path | None = None, keys: tuple[str, ...] = DEFAULT_KEYS) -> Path:
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
    for key, values in series.items():
        if all(v != v for v in values):  # every value NaN: the key is in no record
            raise TelemetryError(f"{log}: no record has key '{key}'")
    output = Path(output) if output else default_output(Path(log))
    figure, axes = plt.subplots(
        len(keys), 1, figsize=(8, 2.6 * len(keys)), sharex=True, squeeze=False
    )
    for axis, key in zip(axes[:, 0], keys, strict=True):
        axis.plot(epochs, series[key], linewidth=1.4)
        axis.set_ylabel(key)
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
