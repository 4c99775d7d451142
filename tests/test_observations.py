"""Observation codes, dense channels and features against hand-derived expectations."""

from __future__ import annotations

import math

import torch
from conftest import A, act, make_world

from townlet.world.constants import terrain_code


def small_town():
    # 3x2 grid, window 3. Bed at (1,0); wall at (2,1); agents at (0,0) and (0,1).
    return make_world(
        {
            "width": 3,
            "height": 2,
            "walls": [[2, 1]],
            "start_hour": 6.0,
            "affordances": [{"name": "bed", "type": "Bed", "pos": [1, 0]}],
            "agents": [{"id": "me", "pos": [0, 0]}, {"id": "you", "pos": [0, 1]}],
        },
        world={"observation": {"window": 3}},
    )


def code(terrain: int, occupant: int) -> int:
    return terrain * 4 + occupant


def test_map_codes_match_a_hand_derived_window():
    world = small_town()
    codes = world.observe().map_codes[0, 0]
    wall, floor, bed = 0, 1, terrain_code(0)
    expected = torch.tensor(
        [
            [code(wall, 0), code(wall, 0), code(wall, 0)],  # row above the grid
            [code(wall, 0), code(floor, 2), code(bed, 0)],  # outside, self, idle bed
            [code(wall, 0), code(floor, 1), code(floor, 0)],  # outside, the other agent, floor
        ],
        dtype=torch.uint8,
    )
    assert torch.equal(codes, expected)
    # the other agent sees me above it, and the wall to its lower right is inside the grid
    theirs = world.observe().map_codes[0, 1]
    assert int(theirs[0, 1]) == code(floor, 1) and int(theirs[1, 2]) == code(floor, 0)
    assert int(theirs[2, 1]) == code(wall, 0)


def test_shared_tile_busy_and_queued_affordances_are_coded():
    world = small_town()
    act(world, A.RIGHT, A.WAIT)  # me onto the bed
    act(world, A.INTERACT, A.UP)  # me sleeps; you step onto my old tile
    obs = act(world, A.WAIT, A.RIGHT).obs  # you join me on the bed tile
    occupied_bed = terrain_code(0, 1)
    assert int(obs.map_codes[0, 0, 1, 1]) == code(occupied_bed, 3), "self and another, busy bed"
    obs = act(world, A.WAIT, A.INTERACT).obs  # you queue for the bed
    queued_bed = terrain_code(0, 2)
    assert int(obs.map_codes[0, 1, 1, 1]) == code(queued_bed, 3)


def test_dense_channels_are_named_one_hots_of_the_codes():
    world = small_town()
    obs = world.observe()
    dense = world.dense_map(obs)[0, 0]  # (C, 3, 3)
    names = world.names.dense_channels
    assert dense.shape == (len(names), 3, 3) and dense.dtype == torch.float32

    def channel(name):
        return dense[names.index(name)].tolist()

    assert channel("wall") == [[1, 1, 1], [1, 0, 0], [1, 0, 0]]
    assert channel("Bed") == [[0, 0, 0], [0, 0, 1], [0, 0, 0]]
    assert channel("self") == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert channel("other_agent") == [[0, 0, 0], [0, 0, 0], [0, 1, 0]]
    assert channel("occupied") == [[0, 0, 0]] * 3


def test_features_are_named_and_carry_meters_clock_and_position():
    world = small_town()
    obs = world.observe()
    names = world.names.features
    assert obs.features.shape == (1, 2, len(names))
    row = dict(zip(names, obs.features[0, 0].tolist(), strict=True))
    for meter in world.names.meters:
        assert row[meter] == float(world.meter(meter)[0, 0])
    tod = 60 / 240  # 06:00
    assert math.isclose(row["time_sin"], math.sin(2 * math.pi * tod), abs_tol=1e-6)
    assert math.isclose(row["time_cos"], math.cos(2 * math.pi * tod), abs_tol=1e-6)
    assert (row["pos_x"], row["pos_y"]) == (0.0, 0.0)
    assert row["alive"] == 1.0 and row["has_job"] == 0.0 and row["interacting"] == 0.0
    other = dict(zip(names, obs.features[0, 1].tolist(), strict=True))
    assert (other["pos_x"], other["pos_y"]) == (0.0, 1.0)


def test_every_name_is_exported():
    world = small_town()
    names = world.names.as_dict()
    assert names["actions"] == ["WAIT", "UP", "DOWN", "LEFT", "RIGHT", "INTERACT"]
    assert names["meters"] == ["energy", "hygiene", "satiation", "money", "social"]
    assert len(names["affordance_types"]) >= 8
    assert names["agents"] == ["me", "you"]
    assert names["terrain_codes"][:3] == ["wall", "floor", "Bed/idle"]
    assert names["occupant_codes"] == ["none", "other", "self", "self+other"]


def test_dense_channels_invert_exactly_to_codes(base_cfg):
    from townlet.scenarios import build_world

    world = build_world(base_cfg, num_envs=16)
    generator = torch.Generator().manual_seed(0)
    obs = world.observe()
    seen = set()
    for _ in range(150):
        actions = (torch.rand(obs.action_mask.shape, generator=generator) * obs.action_mask).argmax(
            -1
        )
        actions = torch.where(obs.action_mask[..., 5], 5, actions)
        obs = world.step(actions).obs
        dense = world.dense_map(obs)
        assert torch.equal(world.observer.codes_from_dense(dense), obs.map_codes)
        seen |= set(obs.map_codes.unique().tolist())
    assert len(seen) > 15, "busy, queued, shared and empty cells were all exercised"
