"""A week in town: the calendar, working days, the weekly rent, fatigue, daily scripts, and a
weekly routine that survives where a one-day life does not."""

from __future__ import annotations

import pytest
import torch
from hydra.errors import ConfigCompositionException
from variants import week_variants

from townlet.policy.evaluate import scripted_report
from townlet.scenarios import build_world, load_config
from townlet.scenarios.build import typed
from townlet.scenarios.controller import ScriptedController
from townlet.world import Action, ShiftEvent
from townlet.world.calendar import CALENDAR_FEATURES, RENT_FEATURES, RentEvent

TPD = 240


def week(*overrides: str):
    return typed(load_config(["scenario=town_week", *overrides]))


# meters that do not run down, so that agents who only wait stand the whole week
TIRELESS = tuple(f"world.meters.{m}.decay=0.0" for m in ("energy", "satiation", "hygiene"))


def wait_all(world, ticks: int):
    """Step `ticks` ticks with everyone waiting; the results, in order."""
    waiting = torch.full((world.num_envs, world.layout.num_agents), int(Action.WAIT))
    return [world.step(waiting) for _ in range(ticks)]


def test_a_one_day_town_has_no_calendar_in_its_observations_or_its_step():
    """One-day scenarios keep their features (checkpoints stay loadable) and their step: the
    goldens of every one-day scenario are unchanged (tests/test_golden.py)."""
    world = build_world(load_config([]))
    world.track_terms = True
    assert not world.calendar.active
    assert not set(CALENDAR_FEATURES + RENT_FEATURES) & set(world.names.features)
    assert "rent" not in wait_all(world, 1)[0].terms


def test_the_week_runs_monday_to_monday_and_the_agents_observe_it():
    world = build_world(week(), num_envs=1)
    names = world.names.features
    assert set(CALENDAR_FEATURES + RENT_FEATURES) <= set(names)
    weekdays = [int(r.events.weekday[0]) for r in wait_all(world, 7 * TPD)]
    # Monday 06:00 + 18 hours of Monday, then a day each, then Monday 00:00-06:00
    assert weekdays[0] == 0 and weekdays[180] == 1 and weekdays[-1] == 0
    assert [weekdays.count(d) for d in range(7)] == [240, 240, 240, 240, 240, 240, 240]


def test_jobs_run_monday_to_friday_and_a_day_off_costs_and_pays_nothing():
    """Nobody goes to work: Monday to Friday each shift is charged (late, then absent); on
    Saturday and Sunday no shift runs, no penalty falls and the commute pulls nobody."""
    world = build_world(week(*TIRELESS), num_envs=1, seed=3)
    world.track_terms = True
    results = wait_all(world, 7 * TPD)
    absent_days = {
        int(r.events.weekday[0])
        for r in results
        if (r.events.shift_event == ShiftEvent.ABSENT).any()
    }
    assert absent_days == {0, 1, 2, 3, 4}
    weekend = [r for r in results if int(r.events.weekday[0]) in (5, 6)]
    assert all(
        float(r.terms["late"].abs().sum() + r.terms["absent"].abs().sum()) == 0 for r in weekend
    )
    assert all(float(r.terms["commute"].abs().sum()) == 0 for r in weekend)
    works = world.names.features.index("works_today")
    saturday_obs = weekend[0].obs.features[0, :, works]
    assert bool((saturday_obs == 0).all())


def test_the_rent_is_taken_on_sunday_at_noon_or_charged_when_the_money_is_short():
    """alice and carol start with enough money, bob and dave with none; nobody works."""
    config = week(*TIRELESS)
    for agent, money in zip(config.scenario.agents, (0.9, 0.0, 0.9, 0.0), strict=True):
        agent.meters = {"money": money, "energy": 1.0, "satiation": 1.0}
    world = build_world(config, num_envs=1)
    world.track_terms = True
    money = world.names.meters.index("money")
    results = wait_all(world, 7 * TPD)
    due = [t for t, r in enumerate(results) if bool((r.events.rent != RentEvent.NONE).any())]
    # Monday 06:00 + 6 days and 6 hours = Sunday 12:00
    assert due == [6 * TPD + 60]
    paid = results[due[0]]
    assert paid.events.rent[0].tolist() == [RentEvent.PAID, RentEvent.MISSED] * 2
    assert paid.terms["rent"][0].tolist() == [0.0, -1.0, 0.0, -1.0]
    assert float(world.state.meters[0, 0, money]) == pytest.approx(0.4)
    assert sum(float(r.terms["rent"].sum()) for r in results) == -2.0


def test_the_tired_earn_half_and_may_faint_the_same_way_under_the_same_seed():
    config = week("world.fatigue.faint_chance=0.05")
    for agent in config.scenario.agents:
        agent.meters = {"energy": 0.1}
    faints = []
    for _ in range(2):
        world = build_world(config, num_envs=4, seed=11)
        results = wait_all(world, 40)
        faints.append(torch.stack([r.events.fainted for r in results]))
    assert bool(faints[0].any()), "at 5% a tick, some of 16 tired agents faint within 40 ticks"
    assert torch.equal(faints[0], faints[1])
    # at work, tired: half the wage
    awake = build_world(week("world.fatigue.faint_chance=0.0", *TIRELESS), num_envs=1)
    tired = build_world(week("world.fatigue.faint_chance=0.0", *TIRELESS), num_envs=1)
    energy = awake.names.meters.index("energy")
    tired.state.meters[..., energy] = 0.15
    awake.state.meters[..., energy] = 0.9
    for world in (awake, tired):
        controller = ScriptedController(world, [list(a.script) for a in week().scenario.agents])
        world.wages = 0.0
        for _ in range(200):
            result = world.step(controller.act())
            controller.update(result)
            world.wages += float(result.events.wage[0, 1])  # bob, at the office from 9:00
    assert tired.wages == pytest.approx(awake.wages * 0.5, rel=0.05) and awake.wages > 0


def test_scripts_start_each_morning_with_the_day_off_script_at_weekends():
    config = week()
    world = build_world(config, num_envs=1)
    controller = ScriptedController(world, [list(a.script) for a in config.scenario.agents])
    park = world.names.affordance_types.index("Park")
    parks_by_day = [0] * 7
    for _ in range(7 * TPD):
        result = world.step(controller.act())
        controller.update(result)
        parks_by_day[int(result.events.weekday[0])] += int((result.events.completed == park).sum())
    assert parks_by_day[5] >= 3 and parks_by_day[6] >= 3  # the weekend scripts' park


@pytest.mark.parametrize(
    ("scenario", "override", "message"),
    [
        ("town_week", "scenario.ticks=240", "scenario.ticks=240: a 7-day scenario runs 7 x 240"),
        ("town", "world.rent.amount=0.5", "world.rent.amount=0.5: rent is weekly"),
        ("town_week", "world.rent.hour=25", "world.rent.hour=25"),
        ("town_week", "scenario.start_weekday=someday", "start_weekday"),
        ("town_week", "world.jobs.office.days=[mon,funday]", "days"),
    ],
)
def test_calendar_keys_are_checked_in_one_line(scenario, override, message):
    with pytest.raises((ValueError, ConfigCompositionException)) as refused:
        typed(load_config([f"scenario={scenario}", override]))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_the_weekly_routine_survives_the_week_and_a_one_day_life_does_not():
    config = week()
    routine = scripted_report(config, 4, 1)
    behaviour = routine["behaviour"]
    assert behaviour["on_time_rate"] == 1.0 and behaviour["faints_per_agent_day"] == 0.0
    assert behaviour["rent_paid_rate"] == 1.0 and behaviour["rent_missed"] == 0
    assert behaviour["by_weekday"]["sat"]["shifts"] == 0
    for name, life in week_variants(config).items():
        report = scripted_report(life, 4, 1)
        assert report["behaviour"]["faints_per_agent_day"] > 0, name
        assert report["return_mean"] < routine["return_mean"] - 5, name
