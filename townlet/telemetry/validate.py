"""Record validation against the schema, and drift against a baseline."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from townlet.telemetry.reader import TelemetryError, iter_records, quote
from townlet.telemetry.schema import (
    ANNEAL_KEYS,
    DATA_MODES,
    FORBIDDEN_IN_10,
    REQUIRED,
    version_key,
)

_REQUIRED_SETS = {version: frozenset(k.name for k in keys) for version, keys in REQUIRED.items()}
_NUMERIC = frozenset((int, float))
_ANNEAL_TYPES = {
    k.name: {"number": (int, float), "string": (str,), "bool": (bool,)}[k.kind] for k in ANNEAL_KEYS
}
_ANNEAL_NAMES = frozenset(_ANNEAL_TYPES)


_VERSION_NAMES = {1.0: "1.0", 1.1: "1.1", 1.2: "1.2", 1.3: "1.3"}
_WITH_ANNEAL = ("1.2", "1.3")
_NUMBERS = (int, float)  # exactly: bool is not a version, a dict cannot be looked up
_ABSENT = object()


def check_record(record: dict[str, Any], path: Path, number: int) -> None:
    """Raise TelemetryError naming file, line, epoch and key on the first problem.

    Hot path for million-record logs: set operations and one sum over the values; only a
    record that looks wrong is walked key by key to name the problem."""
    raw_version = record.get("telemetry_version")
    version = _VERSION_NAMES.get(raw_version) if raw_version.__class__ in _NUMBERS else None
    if version is None:
        version = version_key(raw_version)
    if (
        version is None
        or not _REQUIRED_SETS[version].issubset(record)
        or (version == "1.0" and not FORBIDDEN_IN_10.isdisjoint(record))
    ):
        _explain(record, path, number, version)
    anneal = {}
    if version in _WITH_ANNEAL and not _ANNEAL_NAMES.isdisjoint(record):
        anneal = {k: record.pop(k) for k in _ANNEAL_NAMES.intersection(record)}
    mode = record.pop("data_mode", _ABSENT)
    try:
        values = record.values()
        fine = set(map(type, values)) <= _NUMERIC and math.isfinite(sum(values))
    finally:
        if mode is not _ABSENT:
            record["data_mode"] = mode
        record.update(anneal)
    for key, value in anneal.items():
        _check_anneal(key, value, path, number, record)
    if mode is not _ABSENT and mode not in DATA_MODES:
        where = f"{path}:{number}: epoch {record.get('epoch', '?')}"
        raise TelemetryError(
            f"{where}: key 'data_mode': {quote(mode)} is not one of {', '.join(DATA_MODES)}"
        )
    if not fine:
        _explain(record, path, number, version)


def _explain(record: dict[str, Any], path: Path, number: int, version: str | None) -> None:
    """The slow, precise walk: raise for the first problem found (if any)."""
    where = f"{path}:{number}: epoch {record.get('epoch', '?')}"
    if version is None:
        version_given = quote(record.get("telemetry_version"))
        raise TelemetryError(f"{where}: key 'telemetry_version': unknown version {version_given}")
    missing = _REQUIRED_SETS[version].difference(record)
    if missing:
        raise TelemetryError(f"{where}: missing key '{sorted(missing)[0]}' (version {version})")
    if version == "1.0":
        extra = FORBIDDEN_IN_10.intersection(record)
        if extra:
            raise TelemetryError(
                f"{where}: key '{sorted(extra)[0]}' is 1.1-only but the record is 1.0"
            )
    for key, value in record.items():
        if key == "data_mode" or (version in _WITH_ANNEAL and key in _ANNEAL_NAMES):
            continue
        if type(value) not in _NUMERIC:
            raise TelemetryError(f"{where}: key {quote(key)}: {quote(value)} is not a number")
        if not math.isfinite(value):
            raise TelemetryError(f"{where}: key {quote(key)}: {value} is not finite")


def _check_anneal(key: str, value: Any, path: Path, number: int, record: dict[str, Any]) -> None:
    """A 1.2 anneal key: its declared type, or null; numbers finite."""
    if value is None:
        return
    kinds = _ANNEAL_TYPES[key]
    wrong = (bool in kinds) != isinstance(value, bool) or not isinstance(value, kinds)
    if wrong or (isinstance(value, float) and not math.isfinite(value)):
        where = f"{path}:{number}: epoch {record.get('epoch', '?')}"
        expected = " or ".join(t.__name__ for t in kinds)
        raise TelemetryError(f"{where}: key '{key}': {quote(value)} is not a {expected} (or null)")


def load_baseline(path: Path) -> dict[str, float]:
    """baseline_* values from a JSON object, or from the first record of a log."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError as error:
        raise TelemetryError(f"{path}: baseline file not found") from error
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = next(iter_records(path))[1]  # an NDJSON log: its first record
    if not isinstance(data, dict):
        raise TelemetryError(f"{path}: a baseline must be a JSON object or a log")
    baseline = {k: v for k, v in data.items() if k.startswith("baseline_")}
    if not baseline:
        raise TelemetryError(f"{path}: no baseline_* keys")
    for key, value in baseline.items():
        if type(value) not in _NUMERIC or not math.isfinite(value):
            raise TelemetryError(
                f"{path}: baseline key {quote(key)}: {quote(value)} is not a finite number"
            )
    return baseline


def drift(
    record: dict[str, Any], baseline: dict[str, float]
) -> dict[str, tuple[float, float | None]]:
    """{key: (absolute drift, relative drift or None where the baseline is 0)} for keys in both."""
    out = {}
    for key, base in baseline.items():
        if key in record:
            delta = record[key] - base
            out[key] = (delta, None if base == 0 else delta / abs(base))
    return out


def validate_log(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Validated records, streaming."""
    for number, record in iter_records(path):
        check_record(record, Path(path), number)
        yield number, record
