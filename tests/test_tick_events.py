"""What a tick produced is declared once (`townlet.world.events`): the world's events match the
declaration, the buffers are derived from it and one function counts them for every reader."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from townlet.policy.event_counts import EventTally, count_events, meal_types
from townlet.scenarios import build_world, load_config
from townlet.world.events import AGENT, TICK_EVENTS, StepEvents, allocate_events, store_tick


@pytest.mark.parametrize("scenario", ["town", "town_week"])
def test_every_event_the_world_reports_has_its_declared_shape_and_dtype(scenario):
    world = build_world(load_config([f"scenario={scenario}"]), num_envs=3)
    e, a = 3, world.layout.num_agents
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        actions = torch.randint(0, 6, (e, a), generator=generator)
        events = world.step(actions).events
        for event in TICK_EVENTS:
            value = getattr(events, event.name)
            if value is None:  # only the weekday, in a town without a calendar
                assert event.name == "weekday" and scenario == "town"
                continue
            assert value.shape == ((e, a) if event.scope == AGENT else (e,)), event.name
            assert value.dtype == event.dtype, event.name
    assert [e.name for e in TICK_EVENTS] == [f.name for f in dataclasses.fields(StepEvents)]
    assert all(e.meaning for e in TICK_EVENTS)


def test_buffers_follow_the_declaration_and_counting_in_chunks_adds_up():
    world = build_world(load_config(["scenario=town"]), num_envs=2)
    a, ticks = world.layout.num_agents, 240
    whole = allocate_events(ticks, 2, a)
    assert set(whole) == {e.name for e in TICK_EVENTS}
    chunked = EventTally(2, a, world.names, meal_types(world.layout), chunk=7)
    generator = torch.Generator().manual_seed(1)
    rows = torch.ones(2, a, dtype=torch.bool)
    rows[1, 0] = False  # an agent left out of the count
    every_row = torch.zeros(ticks, 2 * a, dtype=torch.bool)
    for t in range(ticks):
        events = world.step(torch.randint(0, 6, (2, a), generator=generator)).events
        store_tick(whole, t, events)
        chunked.add(events, rows)
        every_row[t] = rows.reshape(-1)
    at_once = count_events(whole, a, world.names, meal_types(world.layout), every_row)
    in_chunks = chunked.counts()
    assert in_chunks.keys() == at_once.keys()
    for key, value in at_once.items():
        assert in_chunks[key] == pytest.approx(value), key
    assert at_once["events.completed.Fridge"] + at_once["events.completed.Bed"] > 0
    everyone = count_events(whole, a, world.names, meal_types(world.layout))
    assert everyone["shift_absent_events"] >= at_once["shift_absent_events"]
