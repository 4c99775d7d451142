"""Each mechanic of the world, asserted through behaviour on small hand-built towns."""

from __future__ import annotations

import pytest
import torch
from conftest import A, act, make_world, run, xy

from townlet.world import ShiftEvent
from townlet.world.constants import ShiftState

BED, SHOWER, FRIDGE, STOVE, JOB, CAFE = 0, 1, 2, 3, 4, 5  # catalogue order in conf/world/default


def feature(world, obs, name, agent=0):
    return float(obs.features[0, agent, world.names.features.index(name)])


def test_moves_take_one_tick_and_walls_and_edges_block():
    world = make_world(
        {"width": 5, "height": 3, "walls": [[2, 0, 2, 1]], "agents": [{"id": "a", "pos": [1, 0]}]}
    )
    mask = world.observe().action_mask[0, 0]
    assert mask.tolist() == [True, False, True, True, False, False]  # WAIT UP DOWN LEFT RIGHT INT
    act(world, A.RIGHT)
    assert xy(world) == (1, 0), "a wall blocks the move"
    act(world, A.UP)
    assert xy(world) == (1, 0), "the grid edge blocks the move"
    act(world, A.DOWN)
    assert xy(world) == (1, 1)
    act(world, A.DOWN)
    act(world, A.RIGHT)
    assert xy(world) == (2, 2), "the gap under the wall is walkable"


def test_agent_walks_to_bed_and_sleeping_restores_energy():
    world = make_world(
        {
            "width": 4,
            "height": 2,
            "affordances": [{"name": "bed", "type": "Bed", "pos": [0, 0]}],
            "agents": [{"id": "a", "pos": [2, 0], "meters": {"energy": 0.3}}],
        }
    )
    run(world, [(A.LEFT,), (A.LEFT,)])
    assert xy(world) == (0, 0)
    energy_before = float(world.meter("energy")[0, 0])
    started = act(world, A.INTERACT)
    assert int(started.events.started[0, 0]) == BED
    ticks, completed, sleep_rewards = 0, None, []
    while completed is None:
        result = act(world, A.WAIT)
        sleep_rewards.append(float(result.reward[0, 0]))
        ticks += 1
        progress = feature(world, result.obs, "interaction_progress")
        if int(result.events.completed[0, 0]) == BED:
            completed = result
        else:
            assert 0 < progress < 1
        assert ticks <= 20
    assert ticks == 20, "Bed takes its configured 20 ticks"
    gained = float(world.meter("energy")[0, 0]) - energy_before
    assert gained == pytest.approx(0.5 - 21 * 0.0025, abs=1e-5)
    # effects accrue per tick (world.interaction_effects: per_tick): every tick of sleep pays
    assert min(sleep_rewards) > 0.02 and sum(sleep_rewards) > 0.4


def shower_town(agents):
    return {
        "width": 5,
        "height": 3,
        "affordances": [{"name": "shower", "type": "Shower", "pos": [2, 0]}],
        "agents": agents,
    }


def test_busy_shower_queues_fifo_then_serves_everyone_in_turn():
    world = make_world(
        shower_town(
            [
                {"id": "a", "pos": [1, 0], "meters": {"hygiene": 0.2}},
                {"id": "b", "pos": [3, 0], "meters": {"hygiene": 0.2}},
                {"id": "c", "pos": [2, 1], "meters": {"hygiene": 0.2}},
            ]
        )
    )
    results = []
    run(world, [(A.RIGHT, A.WAIT, A.WAIT), (A.INTERACT, A.LEFT, A.WAIT)], results)
    assert int(results[-1].events.started[0, 0]) == SHOWER
    joined_b = act(world, A.WAIT, A.INTERACT, A.UP)
    assert bool(joined_b.events.contention[0, 1])
    assert float(joined_b.events.contention_intensity[0, 1]) == 1.0, "first in line"
    assert feature(world, joined_b.obs, "in_queue", agent=1) == 1.0
    assert float(world.state.rivalry[0, 1, 0]) > 0 and float(world.state.rivalry[0, 0, 1]) > 0
    joined_c = act(world, A.WAIT, A.WAIT, A.INTERACT)
    assert float(joined_c.events.contention_intensity[0, 2]) == 2.0, "second in line"
    assert int(joined_c.events.contention.sum()) == 1, "one contention event this tick"

    order, hygiene_start = [], 0.2
    for _ in range(20):
        result = act(world, A.WAIT, A.WAIT, A.WAIT)
        for agent in range(3):
            if int(result.events.started[0, agent]) == SHOWER:
                order.append(agent)
        # never more users than the capacity of 1
        assert int((world.state.using[0] >= 0).sum()) <= 1
    assert order == [1, 2], "the queue is served first come, first served"
    assert bool((world.meter("hygiene")[0] > hygiene_start + 0.4).all()), "all three showered"


def test_leaving_the_tile_leaves_the_queue():
    world = make_world(shower_town([{"id": "a", "pos": [2, 0]}, {"id": "b", "pos": [3, 0]}]))
    run(world, [(A.INTERACT, A.LEFT), (A.WAIT, A.INTERACT)])
    assert int(world.state.queued[0, 1]) == 0
    act(world, A.WAIT, A.RIGHT)
    assert int(world.state.queued[0, 1]) == -1
    started = [int(act(world, A.WAIT, A.WAIT).events.started[0, 1]) for _ in range(6)]
    assert SHOWER not in started


def test_rivalry_rises_on_contention_then_decays():
    world = make_world(
        shower_town([{"id": "a", "pos": [2, 0]}, {"id": "b", "pos": [3, 0]}]),
        world={"rivalry": {"gain": 0.6, "decay": 0.05, "avoid_threshold": 0.5}},
    )
    run(world, [(A.INTERACT, A.LEFT), (A.WAIT, A.INTERACT)])
    series = [float(world.state.rivalry[0, 1, 0])]
    assert series[0] == pytest.approx(0.6 * 0.95)
    assert feature(world, world.observe(), "rivalry_avoid_count", agent=1) == 1.0
    for _ in range(30):
        act(world, A.WAIT, A.RIGHT if len(series) == 1 else A.WAIT)
        series.append(float(world.state.rivalry[0, 1, 0]))
    assert all(later < earlier for earlier, later in zip(series, series[1:], strict=False))
    assert series[-1] < 0.5 * 0.6


def job_town(agents, grace=2):
    scenario = {
        "width": 6,
        "height": 1,
        "start_hour": 8.5,
        "affordances": [{"name": "desk", "type": "Job", "pos": [5, 0]}],
        "agents": agents,
    }
    world = {
        "jobs": {
            "clerk": {
                "location": "desk",
                "shift_start": 9,
                "shift_end": 10,
                "grace_ticks": grace,
                "wage_per_tick": 0.01,
                "late_penalty": 0.5,
                "absent_penalty": 1.0,
            }
        },
        "reward": {"commute": 0.0},  # penalties and wages alone (the shaping has its own test)
        # nobody stands in for anybody (late help and takeovers have tests of their own)
        "social": {"help_discount": 0.0, "help_reward": 0.0, "takeover_wage": 0.0},
    }
    return scenario, world


def test_punctual_worker_earns_late_worker_is_penalised_and_absent_one_too():
    scenario, world_cfg = job_town(
        [
            {"id": "early", "pos": [4, 0], "job": "clerk"},
            {"id": "late", "pos": [0, 0], "job": "clerk"},
            {"id": "absent", "pos": [0, 0], "job": "clerk"},
        ]
    )
    world = make_world(scenario, world_cfg)
    # tod 85 at tick 0; shift 90..99, on time until tick-of-day 92.
    plan = (
        [(A.RIGHT, A.WAIT, A.WAIT)]
        + [(A.WAIT, A.WAIT, A.WAIT)] * 7
        + [(A.WAIT, A.RIGHT, A.WAIT)] * 5
    )
    plan += [(A.WAIT, A.WAIT, A.WAIT)] * 10
    results = []
    run(world, plan, results)
    events = torch.stack([r.events.shift_event[0] for r in results])  # (T, 3)
    rewards = torch.stack([r.reward[0] for r in results])
    wages = torch.stack([r.events.wage[0] for r in results]).sum(0)
    on_time_tick = (events[:, 0] == ShiftEvent.ON_TIME).nonzero().flatten().tolist()
    late_tick = (events[:, 1] == ShiftEvent.LATE).nonzero().flatten().tolist()
    absent_tick = (events[:, 2] == ShiftEvent.ABSENT).nonzero().flatten().tolist()
    assert on_time_tick == [5], "present at the shift start (tick of day 90)"
    assert late_tick == [12], "arrived at tick of day 97, after the grace period"
    assert absent_tick == [14], "the shift's last tick passed without arrival"
    assert (events[:, 0] != ShiftEvent.LATE).all()
    # tick 8 is tick of day 93, the first after the grace period: the late penalty falls there
    # for both who are not at work, and from there each tick away costs 1/7 of absent_penalty
    assert rewards[8, 1] < rewards[8, 0] - 0.6 and rewards[8, 2] < rewards[8, 0] - 0.6
    assert rewards[12, 1] > rewards[11, 1] + 0.1, "arriving stops the charge; it costs nothing"
    assert float(rewards[:, 2].sum()) < float(rewards[:, 0].sum()) - 1.5, "late + absent"
    assert float(wages[0]) == pytest.approx(0.10, abs=1e-6), "paid each of the 10 shift ticks"
    assert float(wages[1]) == pytest.approx(0.03, abs=1e-6), "paid only after arriving"
    assert float(wages[2]) == 0.0
    money_start = 0.3
    assert float(world.meter("money")[0, 0]) == pytest.approx(money_start + 0.10, abs=1e-5)


def test_shift_state_feature_follows_the_day():
    scenario, world_cfg = job_town([{"id": "w", "pos": [4, 0], "job": "clerk"}])
    world = make_world(scenario, world_cfg)
    columns = [world.feature_index[f"shift_{name}"] for name in world.names.shift_states]
    seen = [world.names.shift_states[int(world.observe().features[0, 0, columns].argmax())]]
    for action in [A.RIGHT] + [A.WAIT] * 20:
        obs = act(world, action).obs
        onehot = obs.features[0, 0, columns]
        assert float(onehot.sum()) == 1.0
        seen.append(world.names.shift_states[int(onehot.argmax())])
    # tick 5 is the shift's first tick (tick of day 90): the arrival registers during it.
    assert seen == ["pre_shift"] * 6 + ["on_time"] * 9 + ["post_shift"] * 7
    assert ShiftState.ON_TIME == 1


def test_fainting_ends_the_agents_episode_with_an_unclipped_penalty():
    world = make_world(
        {
            "width": 3,
            "height": 1,
            "ticks": 50,
            "agents": [
                {"id": "a", "pos": [0, 0], "meters": {"satiation": 0.005}},
                {"id": "b", "pos": [2, 0]},
            ],
        }
    )
    first = act(world, A.WAIT, A.WAIT)
    assert not bool(first.terminated.any())
    second = act(world, A.RIGHT, A.WAIT)
    assert second.terminated[0].tolist() == [True, False]
    assert float(second.reward[0, 0]) < -0.95, "the faint penalty is not clipped away"
    assert not bool(second.env_done[0])
    third = act(world, A.RIGHT, A.WAIT)
    assert xy(world, 0) == (1, 0), "a fainted agent no longer moves"
    assert float(third.reward[0, 0]) == 0.0
    assert not bool(third.obs.action_mask[0, 0, 1:].any()), "only WAIT for the fainted"


def test_all_fainted_terminates_the_env_and_tick_limit_truncates():
    world = make_world(
        {
            "width": 2,
            "height": 1,
            "agents": [{"id": "a", "pos": [0, 0], "meters": {"energy": 0.002}}],
        }
    )
    result = act(world, A.WAIT)
    assert bool(result.env_done[0]) and bool(result.env_terminated[0])
    assert not bool(result.truncated.any())

    world = make_world(
        {"width": 2, "height": 1, "ticks": 3, "agents": [{"id": "a", "pos": [0, 0]}]}
    )
    results = []
    run(world, [(A.WAIT,)] * 3, results)
    assert [bool(r.env_done[0]) for r in results] == [False, False, True]
    assert bool(results[-1].truncated[0, 0]) and not bool(results[-1].env_terminated[0])


def test_opening_hours_and_money_gate_interactions():
    cafe = {
        "width": 2,
        "height": 1,
        "affordances": [{"name": "cafe", "type": "Cafe", "pos": [0, 0]}],
        "agents": [{"id": "a", "pos": [0, 0]}],
    }
    closed = make_world({**cafe, "start_hour": 22.0})
    assert not bool(closed.observe().action_mask[0, 0, A.INTERACT])
    assert int(act(closed, A.INTERACT).events.started[0, 0]) == -1
    opened = make_world({**cafe, "start_hour": 12.0})
    assert bool(opened.observe().action_mask[0, 0, A.INTERACT])
    assert int(act(opened, A.INTERACT).events.started[0, 0]) == CAFE
    broke = make_world(
        {
            **cafe,
            "start_hour": 12.0,
            "agents": [{"id": "a", "pos": [0, 0], "meters": {"money": 0.01}}],
        }
    )
    assert not bool(broke.observe().action_mask[0, 0, A.INTERACT]), "the cafe costs 0.05"
    assert int(act(broke, A.INTERACT).events.started[0, 0]) == -1


def test_cost_is_paid_on_completion():
    world = make_world(shower_town([{"id": "a", "pos": [2, 0], "meters": {"money": 0.5}}]))
    act(world, A.INTERACT)
    for _ in range(4):
        act(world, A.WAIT)
    assert float(world.meter("money")[0, 0]) == pytest.approx(0.49, abs=1e-6)


def test_fridge_stock_runs_out_and_restocks_at_midnight():
    world = make_world(
        {
            "width": 2,
            "height": 1,
            "start_hour": 23.5,
            "affordances": [{"name": "fridge", "type": "Fridge", "pos": [0, 0]}],
            "agents": [{"id": "a", "pos": [0, 0], "meters": {"money": 1.0}}],
        },
        world={"affordances": {"Fridge": {"stock": 2}}},
    )
    started = []
    for _ in range(8):  # tick of day 234..241 (midnight at the 7th step)
        result = act(world, A.INTERACT)
        started.append(int(result.events.started[0, 0]) == FRIDGE)
    assert started == [True, False, True, False, False, False, True, False]
    assert int(world.state.stock[0, 0]) == 1


def test_reward_varies_over_a_random_episode_in_town(base_cfg):
    from townlet.scenarios import build_world

    world = build_world(base_cfg, num_envs=4)
    generator = torch.Generator().manual_seed(3)
    obs = world.observe()
    rewards = []
    for _ in range(240):
        actions = (torch.rand(obs.action_mask.shape, generator=generator) * obs.action_mask).argmax(
            -1
        )
        result = world.step(actions)
        obs = result.obs
        rewards.append(result.reward)
    rewards = torch.stack(rewards)
    assert rewards.std() > 0.05
    assert float(rewards.max()) > 0.05, "some completion paid off"
    assert float(rewards.min()) < -0.4, "some penalty (absence or faint) was felt"
    assert len(torch.unique(rewards.round(decimals=4))) >= 5


def test_auto_reset_restarts_finished_envs_and_reports_final_returns():
    world = make_world(
        {"width": 3, "height": 1, "ticks": 3, "agents": [{"id": "a", "pos": [0, 0]}]},
        num_envs=2,
        auto_reset=True,
    )
    result = None
    for actions in ([[A.RIGHT], [A.WAIT]], [[A.RIGHT], [A.WAIT]], [[A.WAIT], [A.WAIT]]):
        result = world.step(torch.tensor(actions))
    assert result.env_done.tolist() == [True, True]
    assert result.episode_length.tolist() == [3, 3]
    assert world.state.tick.tolist() == [0, 0]
    assert world.state.episode.tolist() == [1, 1]
    assert world.positions()[:, 0].tolist() == [[0, 0], [0, 0]], "reset to the start tile"
    assert torch.allclose(result.episode_return, result.episode_return[0:1]), "same needs decay"
