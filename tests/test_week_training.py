"""Training in a multi-day town: per-weekday figures in the epoch records (telemetry 1.3),
the rent's shaping for the learner and envs begun out of step."""

from __future__ import annotations

import json

import pytest
import torch

from townlet.config.schema import TownletConfig
from townlet.policy.rollout import Rollout
from townlet.policy.train import train
from townlet.policy.week_record import week_figures
from townlet.scenarios import load_config
from townlet.telemetry.schema import ALL_KEYS
from townlet.telemetry.validate import check_record
from townlet.tracking.names import metric_name
from townlet.util.event_codes import RentEvent
from townlet.world import ShiftEvent


def test_each_weekday_gets_its_reward_per_agent_day_and_on_time_share():
    # 1 env x 2 agents, 4 ticks: two on Monday, two on Tuesday; 4 ticks a day
    buffers = Rollout.allocate(ticks=4, n=2, window=1, features=1, actions=1, envs=1)
    buffers.events["weekday"][:, 0] = torch.tensor([0, 0, 1, 1])
    buffers.rewards[:] = torch.tensor([[1.0, 3.0], [1.0, 3.0], [2.0, 0.0], [2.0, 0.0]])
    buffers.events["shift_event"][0] = torch.tensor([ShiftEvent.ON_TIME, ShiftEvent.LATE])
    buffers.events["shift_event"][2, 0] = ShiftEvent.ABSENT
    buffers.events["rent"][3] = torch.tensor([RentEvent.PAID, RentEvent.MISSED])
    focal = torch.tensor([True, True])
    figures = week_figures(buffers, agents=2, ticks_per_day=4, focal=focal, has_rent=True)
    assert figures == {
        "weekday.mon.reward_per_agent_day": pytest.approx(8.0 * 4 / 4),
        "weekday.mon.on_time_rate": 0.5,
        "weekday.tue.reward_per_agent_day": pytest.approx(4.0 * 4 / 4),
        "weekday.tue.on_time_rate": 0.0,
        "rent_paid_events": 1,
        "rent_missed_events": 1,
    }
    # a background agent's ticks are not the learner's
    only_first = week_figures(buffers, 2, 4, torch.tensor([True, False]), has_rent=False)
    assert only_first["weekday.mon.reward_per_agent_day"] == pytest.approx(2.0 * 4 / 2)
    assert only_first["weekday.mon.on_time_rate"] == 1.0
    assert "rent_paid_events" not in only_first


def short_week_run(tmp_path, *overrides: str) -> tuple[TownletConfig, list[dict]]:
    """A few PPO epochs on town_week; the config and the telemetry records."""
    quiet = ["tracking=off", "recording=off", "train.progress=false", "train.eval_episodes=1"]
    given = ["scenario=town_week", "recipe=ppo", "ppo=fast", *quiet, *overrides]
    config = load_config(given)
    train(config, tmp_path / "run")
    lines = (tmp_path / "run" / "telemetry" / "ppo.jsonl").read_text().splitlines()
    return config, [json.loads(x) for x in lines]


def test_a_week_run_records_the_days_it_lived_and_the_rent_in_version_1_3(tmp_path):
    # from Sunday 06:00: the rent falls due at noon, Monday begins at tick 180
    config, records = short_week_run(
        tmp_path, "scenario.start_weekday=sun", "ppo.num_envs=4", "train.total_ticks=256"
    )
    declared = {key.name for key in ALL_KEYS}
    days = set()
    for number, record in enumerate(records, 1):
        assert record["telemetry_version"] == 1.3
        check_record(dict(record), tmp_path / "ppo.jsonl", number)
        week = {k for k in record if k.startswith("weekday.")}
        assert week <= declared
        days |= {k.split(".")[1] for k in week}
    assert days == {"sun", "mon"}
    # every agent owes the rent once per episode that reaches Sunday noon (an env whose agents
    # all fainted starts its Sunday again)
    agents = 4 * len(config.scenario.agents)
    rents = [r["rent_paid_events"] + r["rent_missed_events"] for r in records]
    assert sum(rents) >= agents and all(n <= agents for n in rents)
    assert metric_name("weekday.mon.on_time_rate") == "week/weekday.mon.on_time_rate"


def test_rent_shaping_moves_the_advantages_and_leaves_the_worlds_rewards_alone(tmp_path):
    short = [
        "scenario=town_week",
        "scenario.start_weekday=sun",  # the rent falls due at noon, within the rollout
        "recipe=ppo",
        "ppo=fast",
        "ppo.num_envs=4",
        "ppo.rollout_ticks=96",
        "train.total_ticks=96",
        "train.eval_episodes=1",
        "tracking=off",
        "recording=off",
        "train.progress=false",
    ]
    first = {}
    for weight in (0.0, 1.0):
        train(load_config([*short, f"ppo.rent_shaping={weight}"]), tmp_path / str(weight))
        text = (tmp_path / str(weight) / "telemetry" / "ppo.jsonl").read_text()
        first[weight] = json.loads(text.splitlines()[0])
    plain, shaped = first[0.0], first[1.0]
    # the same actions met the same world: every reward and event is the same ...
    for key in ("weekday.sun.reward_per_agent_day", "rent_missed_events", "faint_events"):
        assert shaped[key] == plain[key]
    assert plain["rent_missed_events"] > 0  # nobody earned before Sunday's rent
    # ... and the learner saw the shortfall: its advantages differ
    assert shaped["adv_mean"] != pytest.approx(plain["adv_mean"], abs=1e-3)


def test_a_rent_shortfall_is_a_share_of_the_rent_for_standing_agents():
    from townlet.scenarios import build_world

    world = build_world(load_config(["scenario=town_week"]))
    calendar, state = world.calendar, world.state
    money = world.names.meters.index("money")
    state.meters[0, :, money] = torch.tensor([0.0, 0.25, 0.5, 2.0])
    alive = torch.tensor([[True, True, True, False]])
    shortfall = calendar.rent_shortfall(state.meters[:1], alive)
    assert shortfall.tolist() == [[1.0, 0.5, 0.0, 0.0]]


def test_rent_shaping_in_a_town_without_rent_is_refused_in_one_line():
    from townlet.config.errors import ConfigError

    with pytest.raises(ConfigError, match=r"ppo.rent_shaping=0.5: this town has no rent"):
        load_config(["ppo.rent_shaping=0.5"])


def test_an_env_begun_part_way_keeps_its_state_and_follows_the_clock():
    from townlet.scenarios import build_world

    world = build_world(load_config(["scenario=town_week"]), num_envs=3)
    world.reset()
    before = world.state.meters.clone()
    world.begin_part_way(torch.tensor([0, 240, 1500]))
    assert world.state.tick.tolist() == [0, 240, 1500]
    assert world.weekday().tolist() == [0, 1, 6]  # Monday, Tuesday, Sunday (06:00 starts)
    assert torch.equal(world.state.meters, before)
    for _ in range(180):  # the last env reaches the week's end first
        result = world.step(torch.zeros(3, world.layout.num_agents, dtype=torch.int64))
    assert result.env_done.tolist() == [False, False, True]
    with pytest.raises(ValueError, match="offsets must lie in"):
        world.begin_part_way(torch.tensor([0, 0, 1680]))


def test_staggered_envs_live_the_whole_week_in_each_epoch_and_leave_cut_episodes_out(tmp_path):
    _, records = short_week_run(
        tmp_path, "ppo.num_envs=7", "ppo.stagger_starts=true", "train.total_ticks=256"
    )
    first = records[0]
    days = {k.split(".")[1] for k in first if k.endswith("reward_per_agent_day")}
    assert days == {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
    # env 6 began 1,440 ticks in and its week ended at tick 240 of the run; the world counts
    # that episode 1,680 ticks long. Only episodes begun at their start are figures.
    assert all(r.get("episodic_length", 0) <= 256 for r in records)
