"""Validate a large log on several cores: byte ranges split at line boundaries, one process
each, streaming within each range. Errors keep their absolute line numbers."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from townlet.telemetry.reader import TelemetryError, check_regular, record_of, truncated
from townlet.telemetry.validate import check_record

PARALLEL_MIN_BYTES = 64 * 2**20


def _ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    size = path.stat().st_size
    cuts = [0]
    with open(path, "rb") as handle:
        for i in range(1, parts):
            handle.seek(size * i // parts)
            handle.readline()  # to the start of the next line
            cuts.append(max(handle.tell(), cuts[-1]))
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]


def _validate_range(
    path: str, start: int, end: int, last: bool
) -> tuple[int, int, tuple[int, str] | None]:
    """(lines, records, first error as (line within range, message with that line))."""
    lines = records = 0
    with open(path, "rb") as handle:
        handle.seek(start)
        position = start
        while position < end:
            raw = handle.readline()
            position += len(raw)
            lines += 1
            if raw[-1:] != b"\n":
                if last:
                    return lines, records, (lines, str(truncated(Path(path), lines)))
                continue
            try:
                record = record_of(raw, Path(path), lines)
            except TelemetryError as error:
                return lines, records, (lines, str(error))
            if record is None:
                continue
            try:
                check_record(record, Path(path), lines)
            except TelemetryError as error:
                return lines, records, (lines, str(error))
            records += 1
    return lines, records, None


def validate_count(path: Path, workers: int | None = None) -> int:
    """Validate every record; return how many. Large logs use every core."""
    path = Path(path)
    check_regular(path)
    workers = workers or os.cpu_count() or 1
    parts = (
        _ranges(path, workers)
        if workers > 1 and path.stat().st_size >= PARALLEL_MIN_BYTES
        else None
    )
    if parts is None:
        results = [_validate_range(str(path), 0, path.stat().st_size, True)]
    else:
        jobs = [(str(path), a, b, i == len(parts) - 1) for i, (a, b) in enumerate(parts)]
        with multiprocessing.get_context("fork").Pool(len(jobs)) as pool:
            results = pool.starmap(_validate_range, jobs)
    lines_before = 0
    for lines, _, error in results:
        if error is not None:
            relative, message = error
            prefix = f"{path}:{relative}:"
            raise TelemetryError(message.replace(prefix, f"{path}:{lines_before + relative}:", 1))
        lines_before += lines
    total = sum(records for _, records, _ in results)
    if total == 0:
        raise TelemetryError(f"{path}:1: empty log (no records)")
    return total
