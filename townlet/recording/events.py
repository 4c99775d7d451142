"""What happened at each step of a recorded episode, as named events: the viewer's and the
video's one reading of the event columns (`recording.frame.outcome_of` writes them).

A recording without event columns (version 1, or written before they existed) has no events:
`episode_events` returns empty lists rather than inventing "nothing happened" for data it lacks;
`has_events` says which case it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from townlet.config.choices import WEEKDAYS
from townlet.recording.format import Episode
from townlet.recording.wording import worded
from townlet.util.event_codes import ChatEvent, RentEvent, ShiftEvent

EVENT_COLUMNS = ("completed", "shift_event", "fainted", "chat", "helped", "took_over")
SHIFT_KINDS = {ShiftEvent.ON_TIME: "on_time", ShiftEvent.LATE: "late", ShiftEvent.ABSENT: "absent"}
WEEKDAY_NAMES = tuple(day.value for day in WEEKDAYS)  # the weekday column's values, in order


def has_events(episode: Episode) -> bool:
    return all(name in episode.columns for name in EVENT_COLUMNS)


def episode_events(episode: Episode) -> list[list[dict[str, Any]]]:
    """Per step, the events of that step's transition, in agent order."""
    steps = [[] for _ in range(episode.steps)]
    if not has_events(episode):
        return steps
    header, cols = episode.header, episode.columns
    agents = list(header["agent_ids"])
    everyone = list(header.get("scenario_agent_ids", agents))
    types = list(header.get("affordance_types", []))
    found: list[tuple[int, int, dict[str, Any]]] = []

    def add(mask: np.ndarray, build) -> None:
        for t, a in zip(*np.nonzero(mask), strict=True):
            found.append((int(t), int(a), {"agent": agents[a], **build(int(t), int(a))}))

    completed = cols["completed"].astype(np.int64)
    add(completed >= 0, lambda t, a: _completed(types, int(completed[t, a])))
    shift = cols["shift_event"].astype(np.int64)
    add(np.isin(shift, list(SHIFT_KINDS)), lambda t, a: {"kind": SHIFT_KINDS[int(shift[t, a])]})
    add(cols["fainted"].astype(bool), lambda t, a: {"kind": "faint"})
    chat = cols["chat"].astype(np.int64)
    partner = cols["chat_partner"].astype(np.int64)
    quality = cols["chat_quality"].astype(np.float64) if "chat_quality" in cols else None
    add(
        chat != ChatEvent.NONE,
        lambda t, a: {
            "kind": "chat",
            "with": everyone[partner[t, a]] if 0 <= partner[t, a] < len(everyone) else None,
            "success": bool(chat[t, a] == ChatEvent.SUCCESS),
            **({"quality": round(float(quality[t, a]), 3)} if quality is not None else {}),
        },
    )
    add(cols["helped"].astype(bool), lambda t, a: {"kind": "late_help"})
    took = cols["took_over"].astype(np.int64)
    add(took > 0, lambda t, a: {"kind": "takeover", "shifts": int(took[t, a])})
    if "rent" in cols:  # a multi-day town's weekly rent
        rent = cols["rent"].astype(np.int64)
        add(rent == RentEvent.PAID, lambda t, a: {"kind": "rent_paid"})
        add(rent == RentEvent.MISSED, lambda t, a: {"kind": "rent_missed"})
    for t, _, event in sorted(found, key=lambda item: (item[0], item[1])):
        steps[t].append(worded(event))
    return steps


def outages_by_step(episode: Episode) -> list[list[str]]:
    """Per step, the utilities out at that step (empty lists when the recording has none)."""
    names = list(episode.header.get("utilities", {}))
    column = episode.columns.get("outages")
    if column is None or not names:
        return [[] for _ in range(episode.steps)]
    return [[names[u] for u in np.nonzero(row)[0]] for row in column.astype(bool)]


def closed_types(episode: Episode, outages: list[str]) -> set[str]:
    """Affordance types closed by the given utilities' outages."""
    utilities = episode.header.get("utilities", {})
    return {kind for name in outages for kind in utilities.get(name, [])}


def _completed(types: list[str], index: int) -> dict[str, Any]:
    return {"kind": "completed", "affordance": types[index] if index < len(types) else str(index)}


def day_starts(episode: Episode) -> list[tuple[int, int]]:
    """(step, weekday) of each midnight inside the episode (weekday 0 = Monday), from the
    weekday column of a multi-day recording; [] for a recording without it."""
    column = episode.columns.get("weekday")
    if column is None or len(column) == 0:
        return []
    days = column.astype(np.int64)
    changed = np.nonzero(days[1:] != days[:-1])[0] + 1
    return [(int(t), int(days[t])) for t in changed]
