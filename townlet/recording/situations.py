"""Where each agent of a recorded episode stands, step by step, beyond its position and meters:
its place in a queue, its shift's state, and its relationships. The viewer's agent focus and
the video read these; each returns None where the recording lacks what it needs, so a page
hides the field instead of showing a made-up value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from townlet.config.choices import WEEKDAYS
from townlet.recording.events import SHIFT_KINDS
from townlet.recording.format import Episode

RELATION_FLOOR = 0.05
"""Relationships weaker than this are left out of a step's list (the matrices are mostly 0)."""


def queue_positions(episode: Episode) -> list[list[list[int] | None]] | None:
    """Per step, per recorded agent: [instance, place (1 = next), queue length] while it
    queues, else None. Order is by the step each joined (the world breaks same-tick joins by
    a random ticket the recording does not keep; those keep agent order)."""
    queued = episode.columns.get("queued")
    if queued is None:
        return None
    queued = queued.astype(np.int64)
    changed = _changes(queued)
    joined = np.zeros(queued.shape[1], dtype=np.int64)
    out: list[list[list[int] | None]] = []
    for t, row in enumerate(queued):
        joined = np.where(changed[t], t, joined)
        places: list[list[int] | None] = [None] * len(row)
        for instance in np.unique(row[row >= 0]):
            members = np.nonzero(row == instance)[0]
            order = members[np.lexsort((members, joined[members]))]
            for place, a in enumerate(order):
                places[int(a)] = [int(instance), place + 1, len(order)]
        out.append(places)
    return out


def shift_states(episode: Episode) -> list[list[str | None]] | None:
    """Per step, per recorded agent: "no job", "off duty", "due" (shift begun, within grace,
    not there yet), "missing" (past grace, not there), "at work (on time)", "at work (late)"
    or "absent" (the shift ended without it). Needs the time of day, the shift events and the
    configs in the header (recordings since format 2 with events)."""
    header, cols = episode.header, episode.columns
    scenario, world = header.get("scenario_config"), header.get("world_config")
    if "time_of_day" not in cols or "shift_event" not in cols or not scenario or not world:
        return None
    tpd = int(header.get("ticks_per_day") or world.get("ticks_per_day") or 240)
    shifts = world.get("jobs") or {}
    tod = cols["time_of_day"].astype(np.int64) % tpd
    events = cols["shift_event"].astype(np.int64)
    weekday = cols["weekday"].astype(np.int64) % 7 if "weekday" in cols else None
    names = [day.value for day in WEEKDAYS]
    states: list[list[str | None]] = [[None] * len(header["agent_ids"]) for _ in tod]
    for a, name in enumerate(jobs(episode)):
        job = shifts.get(name or "")
        if job is None:
            for row in states:
                row[a] = "no job"
            continue
        start = round(job["shift_start"] * tpd / 24)
        end = round(job["shift_end"] * tpd / 24)
        grace = int(job.get("grace_ticks", 0))
        days = job.get("days")  # a multi-day town: the job's working days
        working = {names.index(d) for d in days if d in names} if isinstance(days, list) else None
        arrived = None
        for t, now in enumerate(tod):
            on_shift = start <= now < end if start <= end else (now >= start or now < end)
            if weekday is not None and working is not None and int(weekday[t]) not in working:
                on_shift = False  # a day off
            kind = SHIFT_KINDS.get(int(events[t, a]))
            if kind in ("on_time", "late"):
                arrived = kind
            if kind == "absent":
                states[t][a], arrived = "absent", None
            elif not on_shift:
                states[t][a], arrived = "off duty", None
            elif arrived:
                states[t][a] = f"at work ({arrived.replace('_', ' ')})"
            else:
                states[t][a] = "due" if (now - start) % tpd <= grace else "missing"
    return states


def jobs(episode: Episode) -> list[str | None] | None:
    """Each recorded agent's job (None: none), from the scenario config in the header."""
    scenario = episode.header.get("scenario_config")
    if not scenario:
        return None
    by_id = {agent["id"]: agent.get("job") for agent in scenario.get("agents", [])}
    return [by_id.get(agent_id) for agent_id in episode.header["agent_ids"]]


def agent_sources(episode: Episode) -> list[str] | None:
    """What drove each recorded agent under a population (`focal`, `scripted`, `random`,
    `checkpoint:<file>`); None when the header does not say (every agent was the policy)."""
    sources = episode.header.get("agent_sources")
    if not isinstance(sources, list) or len(sources) != len(episode.header["agent_ids"]):
        return None
    return [str(source)[:80] for source in sources]


def queue_joins(episode: Episode) -> list[tuple[int, int, int]]:
    """(step, agent, instance) for every time a recorded agent joined a queue: contention, as
    the scrubber marks it."""
    queued = episode.columns.get("queued")
    if queued is None:
        return []
    queued = queued.astype(np.int64)
    joined = (queued >= 0) & _changes(queued)
    return [(int(t), int(a), int(queued[t, a])) for t, a in zip(*np.nonzero(joined), strict=True)]


class Relations:
    """Per step: for each recorded agent, [other, familiarity, rivalry] for every other agent
    it has a relationship with (either above RELATION_FLOOR), values rounded to 0.01. Built
    step by step when asked (`at`, or indexing): a week of the village holds 1,680 x 16 x 16
    pairs, and building every step's lists up front took half a second of opening it."""

    def __init__(self, episode: Episode) -> None:
        cols = episode.columns
        self.agents = list(episode.header["agent_ids"])
        self.rivalry = np.round(cols["rivalry"].astype(np.float64), 2)
        self.familiarity = np.round(cols["familiarity"].astype(np.float64), 2)
        self.strong = (self.rivalry >= RELATION_FLOOR) | (self.familiarity >= RELATION_FLOOR)
        self._steps = len(self.strong)

    def __len__(self) -> int:
        return self._steps

    def __getitem__(self, t: int) -> dict[str, list[list[Any]]]:
        return self.at(t)

    def at(self, t: int) -> dict[str, list[list[Any]]]:
        step: dict[str, list[list[Any]]] = {}
        agents, familiarity, rivalry = self.agents, self.familiarity[t], self.rivalry[t]
        for a, b in zip(*np.nonzero(self.strong[t]), strict=True):
            if a != b:
                step.setdefault(agents[a], []).append(
                    [agents[b], float(familiarity[a, b]), float(rivalry[a, b])]
                )
        return step


def relations(episode: Episode) -> Relations | None:
    """The episode's relationships per step (see `Relations`), or None without the columns."""
    cols = episode.columns
    if "rivalry" not in cols or "familiarity" not in cols:
        return None
    return Relations(episode)


def _changes(queued: np.ndarray) -> np.ndarray:
    """(T, A) bool: the agent's queue (instance, -1 none) differs from the step before (from
    none before step 0)."""
    before = np.vstack([np.full((1, queued.shape[1]), -1), queued[:-1]])
    return queued != before
