"""Random utility outages (`scenario.random_outages`): per env, deterministic under the seed,
closing the utility's affordances, observed, counted, recorded (and so drawn by the viewer and
the video) and re-simulated exactly by `recordings verify`."""

from __future__ import annotations

import pytest
import torch
from conftest import A, make_world

from townlet.capture import capture
from townlet.config.errors import ConfigError
from townlet.policy.event_counts import count_events, meal_types
from townlet.recording.events import outages_by_step
from townlet.recording.index import RecordingIndex
from townlet.recording.verify import verify_episode
from townlet.scenarios import load_config
from townlet.serve.frames import EpisodeFrames
from townlet.world.events import allocate_events, store_tick

KITCHEN = {
    "width": 3,
    "height": 1,
    "start_hour": 8.0,
    "ticks": 400,
    "affordances": [{"name": "stove", "type": "Stove", "pos": [0, 0]}],
    "agents": [{"id": "cook", "pos": [0, 0], "meters": {"money": 1.0}}],
    "random_outages": [{"utility": "power", "per_day": 12.0, "hours": 0.5}],
}


def timeline(world, ticks: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Per tick (T + 1, E, the state after the last step included): power out, the outage
    flag observed, INTERACT allowed on the stove; and the outages counted as begun."""
    column = world.feature_index["outage_power"]
    out, seen, allowed, starts = [], [], [], 0
    for t in range(ticks + 1):
        obs = world.observe()
        out.append(world.outages_now()[:, 0].clone())
        seen.append(obs.features[:, 0, column].clone())
        allowed.append(obs.action_mask[:, 0, A.INTERACT].clone())
        if t < ticks:
            waits = torch.full((world.num_envs, 1), int(A.WAIT), dtype=torch.int64)
            starts += int(world.step(waits).events.outage_starts.sum())
    return torch.stack(out), torch.stack(seen), torch.stack(allowed), starts


def test_random_outages_close_the_stove_are_observed_and_counted_per_env():
    world = make_world(KITCHEN, num_envs=4, seed=5)
    out, seen, allowed, starts = timeline(world, 150)  # 8:00 to 23:00, before anyone faints
    assert out.any(0).all(), "every env has outages"
    assert not torch.equal(out[:, 0], out[:, 1]), "each env draws its own"
    assert torch.equal(seen > 0, out), "agents see the flag exactly while it is out"
    assert torch.equal(allowed, ~out), "the stove admits nobody while the power is out"
    began = (out[1:] & ~out[:-1]).sum() + out[0].sum()
    assert starts == int(began)
    # half-hour outages (5 ticks at 10 an hour), back-to-back ones merge into longer runs
    runs = [n for e in range(4) for n in _runs(out[:, e].tolist())]
    assert min(runs) >= 5 and all(r % 5 == 0 for r in runs), runs
    # 12 a day (0.05 a tick while up) over 150 ticks: 4 envs expect about 24 in all
    assert 10 <= starts <= 40, starts


def _runs(flags: list[bool]) -> list[int]:
    """Lengths of the runs of True that ended (one still going at the end is left out)."""
    lengths, current = [], 0
    for flag in flags:
        if flag:
            current += 1
        elif current:
            lengths.append(current)
            current = 0
    return lengths


def test_the_same_seed_gives_the_same_outages_and_another_seed_others():
    first = timeline(make_world(KITCHEN, num_envs=2, seed=7), 150)[0]
    again = timeline(make_world(KITCHEN, num_envs=2, seed=7), 150)[0]
    other = timeline(make_world(KITCHEN, num_envs=2, seed=8), 150)[0]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_a_town_without_random_outages_has_no_outage_state_or_flag():
    world = make_world({**KITCHEN, "random_outages": []}, num_envs=2, seed=5)
    assert "outage_power" not in world.feature_index
    assert world.state.outage_left.shape == (2, 0) and not world.layout.random_outages
    for _ in range(100):
        result = world.step(torch.zeros(2, 1, dtype=torch.int64))
        assert int(result.events.outage_starts.sum()) == 0
        assert bool(result.obs.action_mask[:, 0, A.INTERACT].all())


def test_outages_are_counted_by_the_one_counting_function():
    world = make_world(KITCHEN, num_envs=3, seed=2)
    buffers = allocate_events(120, 3, 1)
    for t in range(120):
        store_tick(buffers, t, world.step(torch.zeros(3, 1, dtype=torch.int64)).events)
    counts = count_events(buffers, 1, world.names, meal_types(world.layout))
    assert counts["utility_outage_events"] == int(buffers["outage_starts"].sum()) > 0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"utility": "gas", "per_day": 1.0, "hours": 1.0}, r"random_outages\[0\].utility: unknown"),
        ({"utility": "power", "per_day": -1.0, "hours": 1.0}, r"random_outages\[0\].per_day: -1"),
        ({"utility": "power", "per_day": 1.0, "hours": 0.0}, r"random_outages\[0\].hours: 0"),
    ],
)
def test_a_bad_random_outage_is_a_one_line_error_naming_the_key(entry, message):
    with pytest.raises(ConfigError, match=message):
        make_world({**KITCHEN, "random_outages": [entry]})


def test_a_recording_shows_random_outages_and_re_simulates_exactly(tmp_path):
    overrides = [
        "scenario=kitchen_breakfast",
        "capture.record=true",
        "scenario.random_outages=[{utility:power,per_day:48.0,hours:0.5}]",
    ]
    result = capture(load_config(overrides), tmp_path)
    episode = RecordingIndex.for_run(tmp_path).load(0)
    assert episode.header["utilities"] == {"power": ["Stove"]}
    steps = outages_by_step(episode)
    powered_off = [t for t, out in enumerate(steps) if "power" in out]
    assert powered_off, "the power went out during the capture"
    stove = [
        a
        for a in EpisodeFrames(episode, "run").message(powered_off[0])["grid"]["affordances"]
        if a["type"] == "Stove"
    ]
    assert stove and stove[0]["closed"], "the viewer draws the stove closed"
    check = verify_episode(episode)
    assert check.verified, check.line()  # re-simulation reproduces every outage
    assert result.trace.events["outage_starts"].sum() >= 1
