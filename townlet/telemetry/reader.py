"""Reading epoch logs line by line (streaming: memory stays flat in the log's size), with
errors that name the file and the line."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

QUOTE_LIMIT = 200


class TelemetryError(ValueError):
    """A log that cannot be read or fails validation; the message names file and line."""


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """repr(value) for an error line, cut to `limit` characters: a 50 MB value is never echoed
    whole."""
    text = repr(value) if not isinstance(value, (dict, list)) else _short_container(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _short_container(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):  # too deep or odd: its type says enough
        return f"<{type(value).__name__}>"


def parse_line(raw: bytes, path: Path, number: int) -> dict[str, Any] | None:
    """One record, or None for a blank line."""
    if len(raw) < 3 and not raw.strip():
        return None
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        try:  # Python's json writes NaN/Infinity tokens: parse them so validation can name the key
            record = json.loads(raw)
        except RecursionError:
            raise TelemetryError(f"{path}:{number}: not a record (nested too deeply)") from None
        except ValueError:
            reason = str(error)[:QUOTE_LIMIT]
            raise TelemetryError(f"{path}:{number}: not JSON ({reason})") from error
    if not isinstance(record, dict):
        raise TelemetryError(f"{path}:{number}: a record must be a JSON object")
    return record


def record_of(raw: bytes, path: Path, number: int) -> dict[str, Any] | None:
    """The one way every reader turns a complete line into a record (None for a blank line):
    orjson's fast path, with `parse_line` explaining anything unusual."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return parse_line(raw, path, number)
    return record if record.__class__ is dict else parse_line(raw, path, number)


def truncated(path: Path, number: int) -> TelemetryError:
    """A last line without its newline, where a complete log was expected."""
    return TelemetryError(f"{path}:{number}: truncated last line (a writer still writing?)")


MAX_LINE_BYTES = 64 * 2**20
"""A record is a few kilobytes; a longer line is refused before it is held in memory."""


def check_regular(path: Path) -> None:
    """A log is a regular file: a folder, FIFO or device (/dev/zero) is refused before it is
    opened, so no reader blocks on it or reads it forever."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as error:
        raise TelemetryError(f"{path}: no such file") from error
    except OSError as error:
        raise TelemetryError(f"{path}: cannot read ({error.strerror})") from error
    if stat.S_ISDIR(mode):
        raise TelemetryError(f"{path}: is a directory, not a log")
    if not stat.S_ISREG(mode):
        raise TelemetryError(f"{path}: not a regular file (a FIFO or device is not a log)")


def iter_records(
    path: Path, tolerate_partial_last: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each line. A last line without its newline is a record still
    being written: an error, unless `tolerate_partial_last` (then it is skipped)."""
    path = Path(path)
    check_regular(path)
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the `with handle` below
    except OSError as error:
        raise TelemetryError(f"{path}: cannot read ({error.strerror})") from error
    seen = 0
    with handle:
        for number, raw in enumerate(iter(lambda: handle.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(raw) > MAX_LINE_BYTES:
                raise TelemetryError(
                    f"{path}:{number}: a line longer than {MAX_LINE_BYTES:,} bytes"
                )
            if raw[-1:] != b"\n":
                if tolerate_partial_last:
                    return
                raise truncated(path, number)
            record = record_of(raw, path, number)
            if record is not None:
                seen += 1
                yield number, record
    if seen == 0:
        raise TelemetryError(f"{path}:1: empty log (no records)")


def truncate_after_epoch(path: Path, epoch: int) -> None:
    """Drop records past `epoch` (a run killed after logging but before checkpointing)."""
    path = Path(path)
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_bytes().splitlines(keepends=True)
        if line.endswith(b"\n") and orjson.loads(line).get("epoch", 0) <= epoch
    ]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(b"".join(kept))
    os.replace(tmp, path)
