"""`summary`: what a run's epoch log says, as text, markdown (for a status report) or JSON.

Streaming: running minima and maxima, the latest record, and (with `--last N`) only the last N
records are kept, so memory stays flat however long the log. Malformed lines are errors naming
file and line; checking every key against the schema is `validate`'s job.
"""

from __future__ import annotations

import math
import operator
from collections import Counter, deque
from pathlib import Path
from typing import Any

import orjson

from townlet.telemetry.reader import TelemetryError, iter_records, quote
from townlet.telemetry.validate import drift

KEY_METRICS = (
    "loss_total",
    "loss_policy",
    "loss_value",
    "loss_entropy",
    "kl_divergence",
    "clip_fraction",
    "grad_norm",
    "explained_variance",
    "episodic_return",
    "survival_rate",
    "steps_per_sec",
    "lr",
)
_KEY_SET = frozenset(KEY_METRICS)


class _Ranges:
    """Running min/max per key, folded column-wise over chunks of records (C-speed builtins)."""

    CHUNK = 8192

    def __init__(self) -> None:
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}
        self._rows: dict[tuple[str, ...], list[tuple]] = {}

    def add(self, record: dict[str, Any]) -> None:
        keys = (
            KEY_METRICS
            if _KEY_SET.issubset(record)
            else tuple(k for k in KEY_METRICS if k in record)
        )
        if not keys:
            return
        rows = self._rows.setdefault(keys, [])
        rows.append(_getter(keys)(record))
        if len(rows) >= self.CHUNK:
            self._fold(keys)

    def _fold(self, keys: tuple[str, ...]) -> None:
        rows = self._rows.pop(keys, [])
        for key, column in zip(keys, zip(*rows, strict=True), strict=False):
            self.low[key] = min(self.low.get(key, math.inf), min(column))
            self.high[key] = max(self.high.get(key, -math.inf), max(column))

    def finish(self) -> None:
        for keys in list(self._rows):
            self._fold(keys)


_GETTERS: dict[tuple[str, ...], Any] = {}


def _getter(keys: tuple[str, ...]):
    if keys not in _GETTERS:
        get = operator.itemgetter(*keys)
        _GETTERS[keys] = get if len(keys) > 1 else (lambda record, g=get: (g(record),))
    return _GETTERS[keys]


def summarise(
    path: Path, baseline: dict[str, float] | None = None, last: int | None = None
) -> dict[str, Any]:
    records = iter_records(path)  # parse errors are named; `validate` checks the schema
    if last:
        records = iter(deque(records, maxlen=last))
    count, modes, latest, first_epoch, anneal = 0, Counter(), None, None, None
    ranges = _Ranges()
    for number, record in records:
        count += 1
        mode = record.get("data_mode", "?")
        if not isinstance(mode, str):
            raise TelemetryError(f"{path}:{number}: key 'data_mode': {quote(mode)} is not a string")
        modes[mode] += 1
        latest = record
        if "anneal_stage" in record:
            anneal = record
        if first_epoch is None:
            first_epoch = record.get("epoch")
        try:
            ranges.add(record)
        except TypeError:
            _raise_first_non_number(path)
    try:
        ranges.finish()
    except TypeError:  # a value that is not a number: find and name its line (rare, so slow)
        _raise_first_non_number(path)
    if not isinstance(latest.get("epoch"), int) or isinstance(latest.get("epoch"), bool):
        raise TelemetryError(f"{path}: the last record has no integer 'epoch' (run validate)")
    return {
        "log": str(path),
        "epochs": count,
        "first_epoch": first_epoch,
        "last_epoch": latest["epoch"],
        "data_modes": dict(modes),
        "cycle_id": latest.get("cycle_id"),
        "telemetry_version": latest.get("telemetry_version"),
        "latest": {k: latest[k] for k in KEY_METRICS if k in latest},
        "range": {
            k: {"min": ranges.low[k], "max": ranges.high[k]} for k in KEY_METRICS if k in ranges.low
        },
        "anneal": None
        if anneal is None
        else {k[len("anneal_") :]: v for k, v in anneal.items() if k.startswith("anneal_")},
        "baseline_drift": (
            {k: {"drift": d, "relative": r} for k, (d, r) in drift(latest, baseline).items()}
            if baseline
            else None
        ),
    }


def _raise_first_non_number(path: Path) -> None:
    for number, record in iter_records(path):
        for key in KEY_METRICS:
            value = record.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise TelemetryError(
                    f"{path}:{number}: key '{key}': {quote(value)} is not a number"
                )
    raise TelemetryError(f"{path}: a metric is not a number (run validate)")


def render(summary: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode()
    md = fmt == "markdown"
    modes = ", ".join(f"{m} x{n}" for m, n in summary["data_modes"].items())
    head = (
        f"{summary['epochs']} epoch(s) analysed (last epoch {summary['last_epoch']}); "
        f"data mode {modes}; cycle {summary['cycle_id']}"
    )
    lines = [
        f"## Telemetry summary: `{summary['log']}`"
        if md
        else f"telemetry summary: {summary['log']}",
        "",
        head,
        "",
    ]
    rows = [
        (k, summary["latest"].get(k), summary["range"][k]["min"], summary["range"][k]["max"])
        for k in summary["range"]
    ]
    lines += _table(("metric", "latest", "min", "max"), rows, md)
    anneal = summary.get("anneal")
    if anneal:
        accuracy, threshold = anneal.get("bc_accuracy"), anneal.get("bc_threshold")
        lines += [
            "",
            f"anneal: cycle {anneal.get('cycle')}, stage {anneal.get('stage')}, BC accuracy "
            f"{_fmt(accuracy)} (gate {_fmt(threshold)}, "
            f"{'passed' if anneal.get('bc_passed') else 'not passed'})",
        ]
    if summary["baseline_drift"]:
        lines += ["", "Baseline drift (latest record):", ""]
        drift_rows = [
            (k, None, d["drift"], d["relative"]) for k, d in summary["baseline_drift"].items()
        ]
        lines += _table(("key", "", "drift", "relative"), drift_rows, md)
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _table(header: tuple[str, ...], rows: list[tuple], md: bool) -> list[str]:
    cells = [list(header)] + [[_fmt(v) if i else str(v) for i, v in enumerate(row)] for row in rows]
    if md:
        out = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(header)]
        return out + ["| " + " | ".join(row) + " |" for row in cells[1:]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
