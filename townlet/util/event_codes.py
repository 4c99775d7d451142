"""The codes the world writes into its per-tick event tensors and recordings keep: one
definition, torch-free, so the world that writes them and the viewer and video that read a
recording (which never load torch) compare against the same names instead of raw numbers."""

from __future__ import annotations

from enum import IntEnum


class ShiftEvent(IntEnum):
    """What happened to an agent's shift this tick."""

    NONE = 0
    ON_TIME = 1
    LATE = 2
    ABSENT = 3


class ChatEvent(IntEnum):
    """The outcome of the chat an agent started this tick."""

    NONE = 0
    SUCCESS = 1
    FAILURE = 2


class RentEvent(IntEnum):
    """Per agent and tick: what the weekly rent did (NONE where it did not fall due)."""

    NONE = 0
    PAID = 1
    MISSED = 2
