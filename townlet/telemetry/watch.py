"""`watch`: one line per epoch, and alerts when a metric crosses a threshold.

With `--follow` it waits for the log to appear, tails it across rotation (the writer renames
`ppo.jsonl` to `ppo.jsonl.1` and starts a new file, or a tool copies the log and truncates it in
place), tolerates a half-written last line, and stops cleanly on Ctrl-C. A value that is NaN,
infinite or not a number always alerts against a threshold on its key.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

from townlet.telemetry.reader import check_regular, iter_records, quote, record_of


@dataclass(frozen=True)
class Threshold:
    option: str  # command-line flag
    key: str  # record key
    kind: str  # "max": alert when above; "min": alert when below
    rollout_only: bool = False


THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("--kl-threshold", "kl_divergence", "max"),
    Threshold("--loss-threshold", "loss_total", "max"),
    Threshold("--grad-threshold", "grad_norm", "max"),
    Threshold("--entropy-threshold", "batch_entropy_mean", "min"),  # as the original reads
    Threshold("--reward-corr-threshold", "reward_advantage_corr", "min"),
    Threshold("--queue-events-min", "queue_conflict_events", "min", rollout_only=True),
    Threshold("--queue-intensity-min", "queue_conflict_intensity_sum", "min", rollout_only=True),
    Threshold("--shared-meal-min", "shared_meal_events", "min", rollout_only=True),
    Threshold("--late-help-min", "late_help_events", "min", rollout_only=True),
    Threshold("--shift-takeover-max", "shift_takeover_events", "max", rollout_only=True),
    Threshold("--chat-quality-min", "chat_quality_mean", "min", rollout_only=True),
)
LINE_KEYS = ("loss_total", "kl_divergence", "grad_norm", "loss_entropy", "episodic_return")


def dest(threshold: Threshold) -> str:
    return threshold.option.lstrip("-").replace("-", "_")


def alerts(record: dict[str, Any], limits: dict[Threshold, float]) -> list[dict[str, Any]]:
    """Every threshold crossed, and a NaN, infinite or non-numeric value of a watched key
    (a threshold's or a printed one), whether or not a threshold is set for it."""
    found = []
    bounds: list[tuple[str, str, float | None]] = [
        (t.key, t.kind, limits.get(t))
        for t in THRESHOLDS
        if not t.rollout_only or record.get("data_mode") == "rollout"
    ]
    watched = {key for key, _, _ in bounds}
    bounds += [(key, "max", None) for key in LINE_KEYS if key not in watched]
    for key, kind, limit in bounds:
        value = record.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            crossed = True  # a value that is not a number cannot be within any bound
        elif not math.isfinite(value):
            crossed = True  # NaN compares false with everything: it is what an alert is for
        elif limit is None:
            continue
        else:
            crossed = value > limit if kind == "max" else value < limit
        if crossed:
            found.append(
                {
                    "type": "alert",
                    "epoch": record.get("epoch"),
                    "key": key,
                    "value": value,
                    "threshold": limit,
                    "kind": kind,
                }
            )
    return found


def alert_line(alert: dict[str, Any]) -> str:
    value, limit = alert["value"], alert["threshold"]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        verb = "exceeds" if alert["kind"] == "max" else "below"
        return f"Epoch {alert['epoch']}: {alert['key']} {value:g} {verb} threshold {limit:g}"
    bound = "no threshold: always an alert" if limit is None else f"threshold {limit:g}"
    return f"Epoch {alert['epoch']}: {alert['key']} is {quote(value)} ({bound})"


def record_line(record: dict[str, Any]) -> str:
    parts = [
        f"{k}={record[k]:.4g}"
        for k in LINE_KEYS
        if isinstance(record.get(k), (int, float)) and not isinstance(record.get(k), bool)
    ]
    return (
        f"Epoch {record.get('epoch')}: " + " ".join(parts) + f" mode={record.get('data_mode', '?')}"
    )


def follow_records(path: Path, interval: float) -> Iterator[tuple[int, dict[str, Any]]]:
    """Tail `path` forever: wait for it, yield complete lines, reopen after rotation."""
    while not path.exists():
        time.sleep(interval)
    check_regular(path)
    handle = open(path, "rb")  # noqa: SIM115 - reopened on rotation, closed in `finally`
    inode, pending, number = os.fstat(handle.fileno()).st_ino, b"", 0
    try:
        while True:
            if os.fstat(handle.fileno()).st_size < handle.tell():
                handle.seek(0)  # copied then truncated in place (logrotate's copytruncate)
                pending, number = b"", 0
            chunk = handle.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    number += 1
                    record = record_of(raw, path, number)
                    if record is not None:
                        yield number, record
                continue
            try:
                rotated = os.stat(path).st_ino != inode
            except FileNotFoundError:
                rotated = False  # between the rename and the writer's next line
            if rotated:
                handle.close()
                handle = open(path, "rb")  # noqa: SIM115 - as above
                inode, pending, number = os.fstat(handle.fileno()).st_ino, b"", 0
                continue
            time.sleep(interval)
    finally:
        handle.close()


def watch(
    path: Path,
    limits: dict[Threshold, float],
    follow: bool = False,
    interval: float = 1.0,
    as_json: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Print records and alerts; return 1 when any threshold was crossed, else 0."""
    records = follow_records(path, interval) if follow else iter_records(path)
    violated = False
    try:
        for _, record in records:
            found = alerts(record, limits)
            if as_json:
                out.write(orjson.dumps({"type": "record", **record}).decode() + "\n")
                for alert in found:
                    out.write(orjson.dumps(alert).decode() + "\n")
            else:
                out.write(record_line(record) + "\n")
                for alert in found:
                    out.write(alert_line(alert) + "\n")
            out.flush()
            if found:
                violated = True
                if follow:
                    break
    except KeyboardInterrupt:
        pass
    return 1 if violated else 0
