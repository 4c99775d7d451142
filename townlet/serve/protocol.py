"""Parsing and checking the viewer protocol's messages: every bad value becomes a
`ProtocolError` whose text is sent back as the error reply (the connection lives on)."""

from __future__ import annotations

import math
from typing import Any

import orjson

from townlet.recording.index import ORDERS

MAX_ID = 2**63 - 1
"""SQLite's integers are signed 64-bit: a larger id is an error reply, never an overflow."""
MIN_SPEED, MAX_SPEED = 0.01, 1000.0


MAX_ERROR_CHARS = 500


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """A client's text echoed in an error reply or a log stays one printable line: newlines
    and control characters are escaped, so a key like "\\n" cannot forge a second line."""
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


class ProtocolError(ValueError):
    """A message the server cannot act on; its text, made one line, is sent back as the error
    message."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(str(message)))


def number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"Invalid {name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ProtocolError(f"Invalid {name}: {value} is not finite")
    if abs(value) > 1e300:
        raise ProtocolError(f"Invalid {name}: {value} is out of range")
    return float(value)


def integer(value: Any, name: str, lo: int = -MAX_ID - 1, hi: int = MAX_ID) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"Invalid {name}: expected an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ProtocolError(f"Invalid {name}: {value} is out of range ({lo}-{hi})")
    return value


def speed(value: Any) -> float:
    given = number(value, "speed")
    if not MIN_SPEED <= given <= MAX_SPEED:
        raise ProtocolError(
            f"Invalid speed: {given} (a finite number in [{MIN_SPEED}, {MAX_SPEED:g}])"
        )
    return given


def parse(raw: str | bytes) -> tuple[str, dict[str, Any]]:
    """(command, message) from a text frame, accepting both control forms."""
    if isinstance(raw, bytes):
        raise ProtocolError("Binary frames are not supported; send JSON text")
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ProtocolError(f"Malformed JSON: {str(error)[:200]}") from error
    if not isinstance(message, dict):
        raise ProtocolError("A message must be a JSON object")
    if "command" in message:
        command = message["command"]
    elif message.get("type") == "replay_control":
        command = message.get("action")
        if command is None:
            raise ProtocolError("replay_control needs an 'action'")
    elif "type" in message:
        command = message["type"]
    else:
        raise ProtocolError("A message needs a 'type' or a 'command'")
    if not isinstance(command, str):
        raise ProtocolError(f"Invalid command: expected a string, got {type(command).__name__}")
    return command, message


def list_filters(filters: Any) -> dict[str, Any]:
    """The `list_recordings` filters, checked and typed."""
    if filters is None:
        filters = {}
    if not isinstance(filters, dict):
        raise ProtocolError("Invalid filters: expected an object")
    clean: dict[str, Any] = {"limit": 100}
    for key, value in filters.items():
        if value is None:
            continue
        if key in ("stage", "limit"):
            clean[key] = integer(value, key)
        elif key in ("min_reward", "max_reward"):
            clean[key] = number(value, key)
        elif key in ("reason", "run"):
            if not isinstance(value, str):
                raise ProtocolError(f"Invalid {key}: expected a string")
            clean[key] = value[:1000]
        elif key == "order":
            if not isinstance(value, str) or value not in ORDERS:
                raise ProtocolError(f"Invalid order: expected one of {', '.join(ORDERS)}")
            clean[key] = value
        else:
            raise ProtocolError(f"Unknown filter: {str(key)[:100]}")
    if not 1 <= clean["limit"] <= 10_000:
        raise ProtocolError(f"Invalid limit: {clean['limit']} (1-10000)")
    return clean
