"""The vectorised town world."""

from townlet.util.event_codes import ShiftEvent
from townlet.world.constants import ACTION_NAMES, Action, ShiftState
from townlet.world.events import StepEvents
from townlet.world.layout import ConfigError, Layout, compile_layout
from townlet.world.observations import Observation
from townlet.world.world import StepResult, World, WorldNames

__all__ = [
    "ACTION_NAMES",
    "Action",
    "ConfigError",
    "Layout",
    "Observation",
    "ShiftEvent",
    "ShiftState",
    "StepEvents",
    "StepResult",
    "World",
    "WorldNames",
    "compile_layout",
]
