"""argparse types shared by the command-line tools."""

from __future__ import annotations

import argparse

SQLITE_INT_MAX = 2**63 - 1  # ids, stages and limits are compared in SQLite's 64-bit integers


def index_int(text: str) -> int:
    """An argparse type: an integer in [0, 2^63 - 1] (a larger one was an OverflowError from
    SQLite with a traceback; now argparse's one-line usage error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= SQLITE_INT_MAX:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 2^63 - 1]")
    return value
