"""Every fixed name the world uses, written once; index maps are derived from these tuples.

Names are primary and integers derived: artifacts carry the names so a file reads without the
config that produced it.
"""

from __future__ import annotations

from enum import IntEnum


class Action(IntEnum):
    """The fixed action vocabulary."""

    WAIT = 0
    UP = 1
    DOWN = 2
    LEFT = 3
    RIGHT = 4
    INTERACT = 5


ACTION_NAMES: tuple[str, ...] = tuple(a.name for a in Action)
# The step tests "did anyone INTERACT?" as `actions.max() == INTERACT`: keep it the largest id.
assert max(Action) == Action.INTERACT
NUM_ACTIONS = len(ACTION_NAMES)
# (dx, dy) per action; y grows downwards (row index).
ACTION_DELTAS: tuple[tuple[int, int], ...] = ((0, 0), (0, -1), (0, 1), (-1, 0), (1, 0), (0, 0))


class ShiftState(IntEnum):
    """Per-agent employment state. Agents without a job are NO_JOB (all-zero one-hot)."""

    PRE_SHIFT = 0
    ON_TIME = 1
    LATE = 2
    ABSENT = 3
    POST_SHIFT = 4
    NO_JOB = 5


SHIFT_STATE_NAMES: tuple[str, ...] = tuple(s.name.lower() for s in ShiftState if s.name != "NO_JOB")


class ShiftPhase(IntEnum):
    """Where a tick of day falls relative to an agent's shift (values of `Layout.shift_phase`)."""

    BEFORE = 0
    ON_TIME_WINDOW = 1
    LATE_WINDOW = 2
    AFTER = 3
    NO_JOB = 4


# `WorldState.arrived`: 0 not arrived this shift, 1 arrived on time, 2 arrived late.
ARRIVAL_KINDS = 3


# Map codes: one small integer per cell = terrain * OCCUPANT_KINDS + occupant.
# Terrain 0 = wall (also outside the grid), 1 = floor, then three codes per affordance type:
# idle, occupied (someone using it), queued (someone waiting for it).
TERRAIN_WALL = 0
TERRAIN_FLOOR = 1
TERRAIN_FIRST_AFFORDANCE = 2
AFFORDANCE_STATES: tuple[str, ...] = ("idle", "occupied", "queued")
OCCUPANT_NAMES: tuple[str, ...] = ("none", "other", "self", "self+other")
OCCUPANT_KINDS = len(OCCUPANT_NAMES)
OCCUPANT_OTHER = 1
OCCUPANT_SELF = 2
MAX_CODE = 255


def terrain_names(affordance_types: tuple[str, ...]) -> tuple[str, ...]:
    """Terrain code names for a catalogue, in code order."""
    names = ["wall", "floor"]
    for type_name in affordance_types:
        names.extend(f"{type_name}/{state}" for state in AFFORDANCE_STATES)
    return tuple(names)


def terrain_code(type_index: int, state: int = 0) -> int:
    """Terrain code of an affordance type in a given state (0 idle, 1 occupied, 2 queued)."""
    return TERRAIN_FIRST_AFFORDANCE + len(AFFORDANCE_STATES) * type_index + state


def dense_channel_names(affordance_types: tuple[str, ...]) -> tuple[str, ...]:
    """Named one-hot channels of the dense map, derived from the codes."""
    return ("wall", *affordance_types, "occupied", "queued", "other_agent", "self")
