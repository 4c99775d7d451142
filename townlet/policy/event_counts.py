"""The counters of a run of ticks' events, in one place: telemetry's epoch records, the
demonstrations' records, evaluation and capture (and so golden) metrics all count with
`count_events`, over buffers laid out by `townlet.world.events.allocate_events` (a capture's
per-agent metrics are its counters over one agent's rows, `capture.samples.COUNTED`)."""

from __future__ import annotations

import torch

from townlet.telemetry.schema import EVENT_PREFIX
from townlet.util.event_codes import ChatEvent
from townlet.world import Layout, ShiftEvent, StepEvents, WorldNames
from townlet.world.events import allocate_events, store_tick

COMPLETION_ALIASES = (("shower_complete_events", "Shower"), ("sleep_complete_events", "Bed"))
"""Completions of these types also have a counter of their own (the system we replace's keys)."""


def meal_types(layout: Layout) -> tuple[int, ...]:
    """Affordance types that feed (the layout's `meal_type`, the rule the world's shared-meal
    familiarity uses too): what `shared_meal_events` counts."""
    return tuple(i for i, meal in enumerate(layout.meal_type.tolist()) if meal)


def count_events(
    events: dict[str, torch.Tensor],
    agents: int,
    names: WorldNames,
    meal_types: tuple[int, ...],
    rows: torch.Tensor | None = None,
) -> dict[str, float]:
    """Counters over (T, E * A) agent and (T, E) env event buffers. `rows` (T, E * A) bool
    keeps only those agent-ticks (evaluation: the agents still in their episode)."""
    keep = rows if rows is not None else torch.ones_like(events["fainted"])
    completed = torch.where(keep, events["completed"], -1)
    shift = torch.where(keep, events["shift_event"], ShiftEvent.NONE)
    chat = torch.where(keep, events["chat"], ChatEvent.NONE)
    attempted = chat != ChatEvent.NONE
    quality = events["chat_quality"][attempted]
    per_env = completed.view(completed.shape[0], -1, agents)
    counts: dict[str, float] = {
        "queue_conflict_events": int((events["contention"] & keep).sum()),
        "queue_conflict_intensity_sum": float((events["contention_intensity"] * keep).sum()),
        "shared_meal_events": sum(int(((per_env == m).sum(-1) >= 2).sum()) for m in meal_types),
        "faint_events": int((events["fainted"] & keep).sum()),
        "shift_on_time_events": int((shift == ShiftEvent.ON_TIME).sum()),
        "shift_late_events": int((shift == ShiftEvent.LATE).sum()),
        "shift_absent_events": int((shift == ShiftEvent.ABSENT).sum()),
        "late_help_events": int((events["helped"] & keep).sum()),
        "shift_takeover_events": int((events["took_over"] * keep).sum()),
        "chat_success_events": int((chat == ChatEvent.SUCCESS).sum()),
        "chat_failure_events": int((chat == ChatEvent.FAILURE).sum()),
        "chat_quality_mean": float(quality.mean()) if len(quality) else 0.0,
        "utility_outage_events": int(events["outage_starts"].sum()),
    }
    types = names.affordance_types
    for key, kind in COMPLETION_ALIASES:
        if kind in types:
            counts[key] = int((completed == types.index(kind)).sum())
    for i, name in enumerate(types):
        counts[f"{EVENT_PREFIX}{name}"] = int((completed == i).sum())
    return counts


class EventTally:
    """`count_events` over a run of ticks of any length, in chunks of `chunk` ticks (memory
    stays one chunk's buffers however long the episode)."""

    def __init__(
        self,
        envs: int,
        agents: int,
        names: WorldNames,
        meal_types: tuple[int, ...],
        device: torch.device | str = "cpu",
        chunk: int = 256,
    ) -> None:
        self.agents, self.names, self.meal_types = agents, names, meal_types
        self.events = allocate_events(chunk, envs, agents, device)
        self.rows = torch.zeros(chunk, envs * agents, dtype=torch.bool, device=device)
        self.filled = 0
        self.totals: dict[str, float] = {}
        self.quality_sum = 0.0

    def add(self, events: StepEvents, rows: torch.Tensor) -> None:
        """One tick's events; `rows` (E, A) bool: the agent-ticks to count."""
        store_tick(self.events, self.filled, events)
        self.rows[self.filled] = rows.reshape(-1)
        self.filled += 1
        if self.filled == len(self.rows):
            self._count()

    def counts(self) -> dict[str, float]:
        """The counters of every tick added so far."""
        self._count()
        totals = dict(self.totals)
        attempts = totals.get("chat_success_events", 0) + totals.get("chat_failure_events", 0)
        totals["chat_quality_mean"] = self.quality_sum / attempts if attempts else 0.0
        return totals

    def _count(self) -> None:
        if self.filled == 0:
            return
        part = {name: buffer[: self.filled] for name, buffer in self.events.items()}
        counts = count_events(
            part, self.agents, self.names, self.meal_types, self.rows[: self.filled]
        )
        attempts = counts["chat_success_events"] + counts["chat_failure_events"]
        self.quality_sum += counts.pop("chat_quality_mean") * attempts
        for key, value in counts.items():
            self.totals[key] = self.totals.get(key, 0) + value
        self.filled = 0
