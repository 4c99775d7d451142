"""What a tick produced, declared once: each event the world reports per tick, with its meaning,
its shape (per agent or per env), its dtype and the value that means "nothing happened".

`StepEvents` is the declaration: its fields carry that metadata, and `TICK_EVENTS` reads it
back. Buffers that keep ticks (the trainer's rollout, the demonstrations' log) are allocated
from it and filled by `store_tick`; the counters telemetry, evaluation and demonstrations
report come from one function, `policy/event_counts.py`'s `count_events`, over those buffers.
The capture trace keeps every declared event and a recording every `recorded` one
(`recording.frame.outcome_of`). A new event is a field here, its world logic and a test; its
buffers, trace and recording column follow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

AGENT, ENV = "agent", "env"


def _event(
    meaning: str, scope: str, dtype: torch.dtype, none: Any = 0, recorded: bool = False
) -> Any:
    metadata = {"meaning": meaning, "scope": scope, "dtype": dtype, "none": none}
    return field(metadata={**metadata, "recorded": recorded})


@dataclass(frozen=True)
class TickEvent:
    """One declared event: `scope` AGENT is (E, A) per tick, ENV is (E,); `recorded` events
    are also a column of every recording (what a replay shows happened)."""

    name: str
    meaning: str
    scope: str
    dtype: torch.dtype
    none: Any
    recorded: bool


@dataclass
class StepEvents:
    """Per-agent (E, A) and per-env (E,) event tensors for one tick. Treat as read-only: they
    may be shared."""

    started: torch.Tensor = _event("affordance type index started", AGENT, torch.int64, -1)
    completed: torch.Tensor = _event(
        "affordance type index completed", AGENT, torch.int64, -1, recorded=True
    )
    contention: torch.Tensor = _event("joined a queue behind others", AGENT, torch.bool, False)
    contention_intensity: torch.Tensor = _event(
        "place in line when joining (1 = first)", AGENT, torch.float32, 0.0
    )
    shift_event: torch.Tensor = _event(
        "ShiftEvent of the agent's shift", AGENT, torch.int64, recorded=True
    )
    fainted: torch.Tensor = _event("fainted this tick", AGENT, torch.bool, False, recorded=True)
    wage: torch.Tensor = _event("money earned this tick", AGENT, torch.float32, 0.0)
    chat: torch.Tensor = _event(
        "ChatEvent of the chat this agent started", AGENT, torch.int64, recorded=True
    )
    chat_partner: torch.Tensor = _event(
        "the agent it chatted with (-1 none)", AGENT, torch.int64, -1, recorded=True
    )
    chat_quality: torch.Tensor = _event(
        "that chat's quality", AGENT, torch.float32, 0.0, recorded=True
    )
    helped: torch.Tensor = _event(
        "a coworker covered this lateness", AGENT, torch.bool, False, recorded=True
    )
    took_over: torch.Tensor = _event(
        "absent colleagues' shifts this agent took over", AGENT, torch.int64, recorded=True
    )
    outage_starts: torch.Tensor = _event("utility outages that began this tick", ENV, torch.int64)
    rent: torch.Tensor = _event(
        "RentEvent: the weekly rent paid or missed", AGENT, torch.int64, recorded=True
    )
    # the day of the week this tick belonged to (0 = Monday); None in a town whose calendar is
    # inactive (one day, no days off, no rent), which skips the work per tick
    weekday: torch.Tensor | None = _event("day of the week (0 = Monday)", ENV, torch.int64)


TICK_EVENTS: tuple[TickEvent, ...] = tuple(
    TickEvent(name=f.name, **f.metadata) for f in dataclasses.fields(StepEvents)
)
RECORDED_EVENTS = tuple(event for event in TICK_EVENTS if event.recorded)
"""The events every recording keeps per agent and step (`recording.frame.outcome_of`)."""


def allocate_events(
    ticks: int, envs: int, agents: int, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """(T, E * A) or (T, E) buffers for every declared event, filled with "nothing"."""
    buffers = {}
    for event in TICK_EVENTS:
        width = envs * agents if event.scope == AGENT else envs
        buffers[event.name] = torch.full(
            (ticks, width), event.none, dtype=event.dtype, device=device
        )
    return buffers


def store_tick(buffers: dict[str, torch.Tensor], t: int, events: StepEvents) -> None:
    """Tick t's events into the buffers (an event the world left out, None, stays "nothing")."""
    for event in TICK_EVENTS:
        value = getattr(events, event.name)
        if value is not None:
            buffers[event.name][t] = value.reshape(-1)
