"""Per-step events: what happened to each agent this tick, and counters derived from it."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class StepEvents:
    """Per-agent (E, A) event tensors for one tick. Treat as read-only: they may be shared."""

    started: torch.Tensor  # int64 affordance type index started, -1 none
    completed: torch.Tensor  # int64 affordance type index completed, -1 none
    contention: torch.Tensor  # bool: joined a queue behind others
    contention_intensity: torch.Tensor  # float32: place in line when joining (1 = first)
    shift_event: torch.Tensor  # int64 ShiftEvent
    fainted: torch.Tensor  # bool
    wage: torch.Tensor  # float32 money earned this tick
    chat: torch.Tensor  # int64 ChatEvent of the chat this agent started
    chat_quality: torch.Tensor  # float32 that chat's quality (0 where none)
    chat_partner: torch.Tensor  # int64 the agent it chatted with (-1 where none)
    helped: torch.Tensor  # bool: a coworker covered this agent's lateness
    took_over: torch.Tensor  # int64 absent colleagues' shifts this agent took over
    outage_starts: torch.Tensor  # (E,) int64 utility outages that began this tick
    rent: torch.Tensor  # int64 RentEvent: the weekly rent paid or missed this tick (0 none)
    # (E,) int64 the day of the week this tick belonged to (0 = Monday); None in a town whose
    # calendar is inactive (one day, no days off, no rent), which skips the work per tick
    weekday: torch.Tensor | None = None
