"""Every scenario shows the behaviour its name promises, on a fresh capture."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from townlet.capture import capture
from townlet.scenarios import load_config
from townlet.scenarios.build import CONF_DIR
from townlet.world import ShiftEvent

SCENARIOS = sorted(p.stem for p in (CONF_DIR / "scenario").glob("*.yaml"))


def captured(name: str, tmp_path: Path, *overrides: str):
    return capture(load_config([f"scenario={name}", *overrides]), tmp_path / name)


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_meets_every_stated_expectation(name, tmp_path):
    result = captured(name, tmp_path)
    assert result.expectations, f"{name} states no expected behaviour"
    failed = [r.message for r in result.expectations if not r.ok]
    assert not failed, "\n".join(failed)


def first_tick(series: torch.Tensor, value: int) -> list[int]:
    return (series == value).nonzero().flatten().tolist()


def test_kitchen_breakfast_agents_take_turns_at_the_stove(tmp_path):
    result = captured("kitchen_breakfast", tmp_path)
    trace, stove = result.trace, result.world.names.affordance_types.index("Stove")
    starts = [first_tick(trace.events["started"][:, a], stove) for a in range(2)]
    assert all(len(s) == 1 for s in starts)
    first, second = sorted(s[0] for s in starts)
    assert second >= first + 5, "the second cook starts only after the first finished"
    satiation = result.world.names.meters.index("satiation")
    assert bool((trace.meters[-1, :, satiation] > trace.meters[0, :, satiation]).all())
    assert len(torch.unique(trace.rewards)) > 3


def test_queue_conflict_serves_three_in_turn_with_rivalry(tmp_path):
    result = captured("queue_conflict", tmp_path)
    trace, shower = result.trace, result.world.names.affordance_types.index("Shower")
    starts = sorted(first_tick(trace.events["started"][:, a], shower)[0] for a in range(3))
    assert starts[1] >= starts[0] + 4 and starts[2] >= starts[1] + 4, "one at a time, in turn"
    assert int(trace.events["contention"].sum()) >= 2
    assert float(trace.rivalry_max[starts[0] + 2 :].max()) > 0


def test_employment_punctuality_on_time_versus_late(tmp_path):
    result = captured("employment_punctuality", tmp_path)
    trace = result.trace
    eve, lou = 0, 1
    on_time = first_tick(trace.events["shift_event"][:, eve], ShiftEvent.ON_TIME)
    late = first_tick(trace.events["shift_event"][:, lou], ShiftEvent.LATE)
    assert len(on_time) == 1 and len(late) == 1 and on_time[0] < late[0]
    deadline = on_time[0] + 3  # the first tick after the grace period
    assert float(trace.shift_penalty[deadline, lou]) >= 0.5, "lateness is charged at the deadline"
    assert float(trace.shift_penalty[late[0], lou]) == 0.0, "arriving costs nothing"
    assert (
        float(trace.events["wage"][:, eve].sum()) > float(trace.events["wage"][:, lou].sum()) + 0.05
    )
    metrics = {s.agent_id: s.metrics for s in result.samples}
    assert metrics["eve"]["shift_penalty"] == 0
    assert metrics["lou"]["shift_penalty"] > 0.5  # late, plus each tick away after the deadline


def test_rivalry_rises_with_each_contention_then_decays_every_tick(tmp_path):
    result = captured("rivalry_decay", tmp_path)
    trace = result.trace
    rivalry = trace.rivalry_max[:, 1]  # sam's strongest rivalry (towards rex)
    joins = (trace.events["contention"][:, 1]).nonzero().flatten().tolist()
    assert len(joins) == 3
    for t in joins:
        assert float(rivalry[t]) > (float(rivalry[t - 1]) if t else 0.0), "each join raises it"
    assert float(rivalry.max()) > 0.5, "above the avoid threshold"
    after = rivalry[joins[-1] :]
    assert bool((after[1:] < after[:-1]).all()), "decays on every tick once contention stops"
    assert float(rivalry[-1]) < 0.1


def test_observation_baseline_matches_the_hand_derived_observation(tmp_path):
    result = captured("observation_baseline", tmp_path)
    arrays = np.load(tmp_path / "observation_baseline" / "rollout_sample_solo_000.npz")
    names = result.world.names
    channels = list(names.dense_channels)
    # The room: 5 x 4, walls at (0,3) and (1,3), Fridge at (0,0), Bed at (4,0), solo at (2,1).
    # A 9 x 9 window centred on (2,1): window cell (row, col) shows grid (col - 2, row - 3).
    expected = np.zeros((len(channels), 9, 9), dtype=np.float32)
    for row in range(9):
        for col in range(9):
            x, y = col - 2, row - 3
            if not (0 <= x < 5 and 0 <= y < 4) or (x, y) in {(0, 3), (1, 3)}:
                expected[channels.index("wall"), row, col] = 1.0
    expected[channels.index("Fridge"), 3, 2] = 1.0
    expected[channels.index("Bed"), 3, 6] = 1.0
    expected[channels.index("self"), 4, 4] = 1.0
    for t in range(arrays["map"].shape[0]):
        for c, channel in enumerate(channels):
            assert np.array_equal(arrays["map"][t, c], expected[c]), f"tick {t}, channel {channel}"
    features = dict(zip(names.features, arrays["features"][0].tolist(), strict=True))
    hand = {
        "energy": 0.8,
        "hygiene": 0.7,
        "satiation": 0.6,
        "money": 0.3,
        "social": 0.6,
        "time_sin": math.sin(math.pi),
        "time_cos": -1.0,
        "pos_x": 0.5,
        "pos_y": 1 / 3,
        # the compass (grid 5 x 4, longest path 7): its own bed is the one at (4, 0), three steps
        "bed_dx": 2 / 4,
        "bed_dy": -1 / 3,
        "bed_distance": 3 / 7,
        "nearest_bed_dx": 2 / 4,
        "nearest_bed_dy": -1 / 3,
        "nearest_fridge_dx": -2 / 4,
        "nearest_fridge_dy": -1 / 3,
        "shift_slack": 1.0,  # no job: all the slack there is
        "alive": 1.0,
    }
    for name, value in features.items():
        assert value == pytest.approx(hand.get(name, 0.0), abs=1e-6), name
    assert np.all(arrays["rewards"] == np.float32(0.01)), "exactly the survival term"
    clock = [names.features.index(n) for n in ("time_sin", "time_cos")]
    still = np.delete(arrays["features"], clock, axis=1)
    assert np.array_equal(still[0], still[-1]), "only the clock moves"
