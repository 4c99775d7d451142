"""Results over seeds: group training runs by their config minus the seed and summarise each.

A run is any folder holding `.hydra/overrides.yaml` and `evaluation.json` (a sweep's jobs, or
run directories given one by one). Runs whose overrides are equal once `seed=` and the Optuna
sweeper's `train.trial.*` are removed form a group. Per group, over its seeds: the final
deterministic evaluation return's mean, standard deviation (ddof 1), 95% bootstrap interval of
the mean (percentile, 10,000 resamples, fixed generator: the same runs give the same report) and
interquartile mean (scipy's 25% trimmed mean, as RL reports over seeds recommend); the wall time
at which each seed's periodic evaluation first reached the scripted routine's return; and
learning curves (the telemetry's `episodic_return` per epoch and the evaluation returns, mean
with a 95% interval band over seeds) drawn with matplotlib.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats

from townlet.tracking.sweep_summary import TRIAL_PREFIX, job_overrides
from townlet.util.run_dir import RunDir
from townlet.util.stopping import PRUNED_FILE

IGNORED_PREFIXES = ("seed=", TRIAL_PREFIX, "hydra.")
RESAMPLES = 10_000


@dataclass
class SeedRun:
    run_dir: Path
    seed: int | None
    key: str  # the overrides minus the seed: what groups runs
    final: float  # deterministic evaluation return at the end
    scripted: float | None
    seconds_to_scripted: float | None  # first periodic evaluation at or above scripted
    curve: dict[int, float]  # epoch -> episodic_return (epochs whose record has it)
    evaluations: dict[int, float]  # epoch -> deterministic evaluation return


@dataclass
class GroupSummary:
    key: str
    runs: int
    seeds: list[int | None]
    mean: float
    std: float | None
    interval: tuple[float, float] | None  # 95% bootstrap interval of the mean
    iqm: float
    reached_scripted: int  # seeds whose evaluation reached the scripted return
    seconds_to_scripted_mean: float | None
    run_dirs: list[str] = field(default_factory=list)


class RunUnreadable(ValueError):
    """One run directory's files cannot be read as a finished run (named in the message)."""


def find_runs(folders: list[Path], problems: list[str] | None = None) -> list[SeedRun]:
    """Every finished run under `folders`; a run whose files are malformed is left out and
    named in `problems` (one line each) instead of stopping the report."""
    runs = []
    for folder in folders:
        candidates = [
            folder,
            *sorted(p.parent.parent for p in folder.rglob(".hydra/overrides.yaml")),
        ]
        for run_dir in dict.fromkeys(candidates):
            try:
                run = read_run(run_dir)
            except RunUnreadable as error:
                if problems is not None:
                    problems.append(str(error))
                continue
            if run is not None:
                runs.append(run)
    return runs


def read_run(run_dir: Path) -> SeedRun | None:
    """The run in `run_dir`; None when it is not a finished run; RunUnreadable naming the file
    when one of its files is malformed."""
    try:
        return _read_run(run_dir)
    except RunUnreadable:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RunUnreadable(f"{run_dir}: skipped, unreadable ({text})") from error


def _read_run(run_dir: Path) -> SeedRun | None:
    overrides, evaluation_file = job_overrides(run_dir), RunDir.of(run_dir).evaluation
    if overrides is None or not evaluation_file.is_file():
        return None
    if (run_dir / PRUNED_FILE).is_file():
        return None  # stopped early: its last evaluation is not a final result
    seed = next((int(o.split("=", 1)[1]) for o in overrides if o.startswith("seed=")), None)
    if seed is None:
        config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text()) or {}
        seed = config.get("seed")
        if not isinstance(seed, int):  # Hydra writes the schema's `${scenario.seed}` as is
            seed = (config.get("scenario") or {}).get("seed")
    key = (
        " ".join(sorted(o for o in overrides if not o.startswith(IGNORED_PREFIXES))) or "(defaults)"
    )
    evaluation = _json(evaluation_file)
    scripted = (evaluation.get("scripted") or {}).get("return_mean")
    if scripted is not None:
        scripted = _finite(scripted, evaluation_file, "scripted.return_mean")
    history_file = RunDir.of(run_dir).evaluation_history
    evaluations, reached = {}, []
    for h in _lines(history_file):
        value = _finite(h["policy_deterministic"]["return_mean"], history_file, "return_mean")
        evaluations[int(h["epoch"])] = value
        if scripted is not None and value >= scripted:
            reached.append(_finite(h["elapsed_sec"], history_file, "elapsed_sec"))
    telemetry = RunDir.of(run_dir).telemetry
    records = _lines(telemetry)
    return SeedRun(
        run_dir=run_dir,
        seed=seed,
        key=key,
        final=_finite(evaluation["policy_deterministic"]["return_mean"], evaluation_file, "return"),
        scripted=scripted,
        seconds_to_scripted=min(reached) if reached else None,
        curve={
            int(r["epoch"]): _finite(r["episodic_return"], telemetry, "episodic_return")
            for r in records
            if "episodic_return" in r
        },
        evaluations=evaluations,
    )


def _finite(value: Any, path: Path, key: str) -> float:
    """A figure the report averages: a NaN or a string would turn the whole group's mean,
    interval and IQM into nan, so the run is skipped instead."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RunUnreadable(f"{path}: skipped, {key} {str(value)[:40]!r} is not a finite number")
    return float(value)


def summarise(runs: list[SeedRun]) -> list[GroupSummary]:
    groups: dict[str, list[SeedRun]] = {}
    for run in runs:
        groups.setdefault(run.key, []).append(run)
    summaries = []
    for key, members in groups.items():
        values = np.array([r.final for r in members], dtype=np.float64)
        reached = [r.seconds_to_scripted for r in members if r.seconds_to_scripted is not None]
        summaries.append(
            GroupSummary(
                key=key,
                runs=len(members),
                seeds=sorted((r.seed for r in members), key=lambda s: (s is None, s)),
                mean=float(values.mean()),
                std=float(values.std(ddof=1)) if len(values) > 1 else None,
                interval=mean_interval(values),
                iqm=float(stats.trim_mean(values, 0.25)),
                reached_scripted=len(reached),
                seconds_to_scripted_mean=float(np.mean(reached)) if reached else None,
                run_dirs=[str(r.run_dir) for r in members],
            )
        )
    return sorted(summaries, key=lambda g: -g.mean)


def mean_interval(values: np.ndarray, axis: int = 0) -> Any:
    """95% percentile-bootstrap interval of the mean (None with fewer than two values)."""
    if values.shape[axis] < 2:
        return None
    if np.all(values == values.take([0], axis=axis)):
        low = high = values.take(0, axis=axis)  # no spread: the interval is the value
    else:
        found = stats.bootstrap(
            (values,),
            np.mean,
            axis=axis,
            confidence_level=0.95,
            n_resamples=RESAMPLES,
            method="percentile",
            rng=np.random.default_rng(0),
        ).confidence_interval
        low, high = found.low, found.high
    if np.ndim(low) == 0:
        return float(low), float(high)
    return np.asarray(low), np.asarray(high)


def report_table(groups: list[GroupSummary]) -> str:
    lines = ["group\truns\tmean\tstd\t95% interval\tIQM\treached scripted\tseconds to scripted"]
    for g in groups:
        interval = "-" if g.interval is None else f"[{g.interval[0]:.4f}, {g.interval[1]:.4f}]"
        std = "-" if g.std is None else f"{g.std:.4f}"
        seconds = "-" if g.seconds_to_scripted_mean is None else f"{g.seconds_to_scripted_mean:.1f}"
        lines.append(
            f"{g.key}\t{g.runs}\t{g.mean:.4f}\t{std}\t{interval}\t{g.iqm:.4f}\t"
            f"{g.reached_scripted}/{g.runs}\t{seconds}"
        )
    return "\n".join(lines)


def legend_label(key: str, seeds: int, width: int = 60) -> str:
    """A group's overrides wrapped to lines of `width` characters: one long line pushed the
    plots aside (a 240-character key squeezed them to slivers)."""
    return textwrap.fill(f"{key} ({seeds} seeds)", width, break_on_hyphens=False)


def plot_curves(runs: list[SeedRun], output: Path) -> Path:
    """Per group: episodic return per epoch and the evaluation returns, mean and 95% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[SeedRun]] = {}
    for run in runs:
        groups.setdefault(run.key, []).append(run)
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for key, members in groups.items():
        for ax, series in ((axes[0], "curve"), (axes[1], "evaluations")):
            epochs, values = _aligned([getattr(r, series) for r in members])
            if not epochs:
                continue
            mean = values.mean(axis=0)
            marker = "o" if len(epochs) == 1 else None  # one evaluation: a point, not a line
            (line,) = ax.plot(epochs, mean, marker=marker, label=legend_label(key, len(members)))
            band = mean_interval(values, axis=0)
            if band is not None and len(epochs) == 1:
                low, high = mean - band[0], band[1] - mean
                ax.errorbar(epochs, mean, yerr=[low, high], color=line.get_color(), capsize=6)
            elif band is not None:
                ax.fill_between(epochs, band[0], band[1], color=line.get_color(), alpha=0.2)
    axes[0].set(title="episodic return (telemetry)", xlabel="epoch", ylabel="return")
    axes[1].set(title="evaluation return (deterministic policy)", xlabel="epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
            break
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output


def write_report(
    folders: list[Path], output_dir: Path, problems: list[str] | None = None
) -> tuple[list[GroupSummary], Path, Path]:
    runs = find_runs(folders, problems)
    if not runs:
        raise ValueError(f"no finished training runs under {', '.join(map(str, folders))}")
    groups = summarise(runs)
    output_dir.mkdir(parents=True, exist_ok=True)  # a new folder is made, as users expect
    summary = output_dir / "seed_report.json"
    # strict JSON: a value that is not a number (NaN) is written as null
    rows = json.loads(json.dumps([asdict(g) for g in groups]), parse_constant=lambda _: None)
    summary.write_text(json.dumps(rows, indent=2, allow_nan=False) + "\n")
    return groups, summary, plot_curves(runs, output_dir / "seed_report.png")


def _aligned(series: list[dict[int, float]]) -> tuple[list[int], np.ndarray]:
    """Epochs every run has, and their values (runs x epochs)."""
    common = sorted(set.intersection(*(set(s) for s in series))) if series else []
    return common, np.array([[s[e] for e in common] for s in series], dtype=np.float64)


MAX_FILE_BYTES = 256 * 2**20
"""A run's evaluation and telemetry files are kilobytes to megabytes; a larger one is skipped
before it is read."""


def _checked_size(path: Path) -> None:
    if path.stat().st_size > MAX_FILE_BYTES:
        raise RunUnreadable(f"{path}: skipped, larger than {MAX_FILE_BYTES // 2**20} MiB")


def _json(path: Path) -> Any:
    _checked_size(path)
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise RunUnreadable(f"{path}: skipped, not JSON ({error})") from error


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    _checked_size(path)
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as error:
                raise RunUnreadable(f"{path}:{number}: skipped, not JSON ({error})") from error
    return rows
