"""The closed sets of words the config accepts, as enums in the schema: a misspelt choice fails
at composition with the key and the allowed words, before any job starts.

Member names equal their values (Hydra parses a choice by name), and each is a `StrEnum`, so a
choice compares, formats and serialises as the plain word."""

from __future__ import annotations

from enum import StrEnum

from townlet.util.weekdays import WEEKDAY_NAMES


class DataSource(StrEnum):
    """`train.source`: where PPO's data comes from."""

    rollout = "rollout"
    replay = "replay"
    mixed = "mixed"
    bc = "bc"


class Precision(StrEnum):
    """`ppo.precision`: the arithmetic of acting and the update (weights stay fp32)."""

    fp32 = "fp32"
    bf16 = "bf16"


class PartnerSource(StrEnum):
    """`population.background[].source`: what drives a background agent."""

    scripted = "scripted"
    random = "random"
    checkpoint = "checkpoint"


class AnnealMode(StrEnum):
    """`train.anneal[].mode`: a behaviour-cloning or a PPO phase."""

    bc = "bc"
    ppo = "ppo"


class TrackingBackend(StrEnum):
    off = "off"
    mlflow = "mlflow"
    mlflow_server = "mlflow_server"


class IntentKind(StrEnum):
    """`scenario.agents[].script[].do`: the scripted controller's verbs."""

    go_to = "go_to"
    use = "use"
    wait = "wait"
    wait_until = "wait_until"
    leave_queue = "leave_queue"
    chat = "chat"


class VideoStyle(StrEnum):
    dark = "dark"
    light = "light"


class VideoQuality(StrEnum):
    """fast: libx264 ultrafast for previews; quality: medium for sharing."""

    fast = "fast"
    quality = "quality"


class PrunerKind(StrEnum):
    """`train.trial.pruner` (from the Optuna sweeper's `pruner`): which Optuna pruner decides."""

    none = "none"
    median = "median"
    hyperband = "hyperband"


Weekday = StrEnum("Weekday", [(day, day) for day in WEEKDAY_NAMES])
Weekday.__doc__ = (
    "A day of the week (`scenario.start_weekday`, `world.jobs.*.days`, `world.rent.weekday`)."
)
WEEKDAYS = tuple(Weekday)
"""Monday first: a day's index is its place here."""
