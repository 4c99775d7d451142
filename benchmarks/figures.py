"""The kept benchmark figures: one JSON object a line, each a benchmark's own line (`name`,
`value`, `unit`, its conditions) stamped with the script, date, machine, load and commit.
`collect.py` writes them; the manual's benchmarks page (docs/generate.py) reads them.

The file is read as untrusted input: a line over 4 KiB, a line that is not a JSON object of the
declared fields, or a file over 4 MiB is refused with one line naming the file and line."""

from __future__ import annotations

import json
import math
from pathlib import Path

MAX_FILE_BYTES = 4 * 2**20
MAX_LINE_BYTES = 4096
STAMP_FIELDS = {"script": str, "date": str, "machine": str, "commit": str, "load": float}
"""What `collect.py` adds to every figure."""


class FiguresError(ValueError):
    """A figures file that is not what `collect.py` writes."""


def figure_from_line(line: dict, stamp: dict) -> dict | None:
    """A benchmark's JSON line as a kept figure, or None when it is not a figure (a script
    may print other objects: progress, tables)."""
    name, value, unit = line.get("name"), line.get("value"), line.get("unit")
    if not (isinstance(name, str) and isinstance(unit, str)):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    conditions = {
        k: v
        for k, v in line.items()
        if k not in ("name", "value", "unit") and isinstance(v, (str, int, float, bool))
    }
    return {"name": name, "value": float(value), "unit": unit, "conditions": conditions, **stamp}


def _checked(record: object, where: str) -> dict:
    if not isinstance(record, dict):
        raise FiguresError(f"{where}: not a JSON object")
    for key, kind in {**STAMP_FIELDS, "name": str, "unit": str, "value": float}.items():
        value = record.get(key)
        ok = (
            isinstance(value, (int, float)) and not isinstance(value, bool)
            if kind is float
            else isinstance(value, kind)
        )
        if not ok:
            raise FiguresError(f"{where}: {key!r} must be a {kind.__name__}")
    if not isinstance(record.get("conditions"), dict):
        raise FiguresError(f"{where}: 'conditions' must be an object")
    return record


def read_figures(path: Path) -> list[dict]:
    """Every kept figure, in file order; [] when the file does not exist."""
    if not path.exists():
        return []
    if path.stat().st_size > MAX_FILE_BYTES:
        raise FiguresError(f"{path}: over {MAX_FILE_BYTES} bytes")
    figures = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            where = f"{path}:{number}"
            if len(raw) > MAX_LINE_BYTES:
                raise FiguresError(f"{where}: line over {MAX_LINE_BYTES} bytes")
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError as error:
                raise FiguresError(f"{where}: not JSON ({error.msg})") from None
            figures.append(_checked(record, where))
    return figures
