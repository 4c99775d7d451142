"""The step's cached facts (`World.fast`) never drift from the state, and the curriculum's
tunables change the world without touching its static layout."""

from __future__ import annotations

import pytest
import torch

from townlet.scenarios import load_config
from townlet.scenarios.build import typed
from townlet.world import World
from townlet.world.fast_path import FastPath, FastPathError


def _world(scenario: str, num_envs: int = 4, **kwargs) -> World:
    config = typed(load_config([f"scenario={scenario}"]))
    return World(config.world, config.scenario, num_envs=num_envs, seed=3, **kwargs)


def _random_steps(world: World, ticks: int, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    obs = world.observe()
    for _ in range(ticks):
        scores = torch.rand(obs.action_mask.shape, generator=generator)
        obs = world.step(scores.masked_fill(~obs.action_mask, -1.0).argmax(-1)).obs


@pytest.mark.parametrize(
    "scenario", ["town", "kitchen_breakfast", "queue_conflict", "employment_punctuality"]
)
def test_cached_facts_match_the_state_after_every_step(scenario):
    world = _world(scenario, auto_reset=True, spread_starts=True, check_fast_path=True)
    _random_steps(world, 2 * world.layout.episode_ticks + 3)  # two episodes and auto-resets
    assert world.fast.problems(world.state) == []
    assert world.fast.oldest_tick == int(world.state.tick.max())


def test_facts_hold_with_agents_seated_out_fainting_and_past_the_limit():
    world = _world("town", check_fast_path=True)
    world.set_stage(decay_scale=40.0, agents=2)  # fast decay: agents faint within the episode
    world.reset()
    _random_steps(world, world.layout.episode_ticks + 5)  # no auto-reset: steps past the limit
    assert not world.fast.all_alive and bool((~world.state.alive).any())


def test_a_stale_fact_is_caught_after_the_step():
    world = _world("queue_conflict", check_fast_path=True)
    _random_steps(world, 5)
    world.fast.oldest_tick += 7  # a cache that no longer says what the state does
    with pytest.raises(FastPathError, match="oldest_tick"):
        _random_steps(world, 1)
    world.fast = FastPath.recompute(world.state)
    world.fast.all_alive = False
    with pytest.raises(FastPathError, match="all_alive"):
        _random_steps(world, 1)


def test_pair_offsets_cached_for_positions_changed_in_place_are_caught(monkeypatch):
    """The tick's chats and the observation share pair offsets cached on the `pos` tensor;
    a step that moved agents in place after the chats would observe stale offsets."""
    world = _world("town", check_fast_path=True)
    _random_steps(world, 5)  # the cache holds and the check passes
    employment = World._employment

    def swap_in_place(self, clock, works):
        self._pair_offsets()  # as after this tick's chats
        self.state.pos[:, [0, 1]] = self.state.pos[:, [1, 0]].clone()
        return employment(self, clock, works)

    monkeypatch.setattr(World, "_employment", swap_in_place)
    assert bool((world.state.pos[:, 0] != world.state.pos[:, 1]).any()), "a swap to see"
    with pytest.raises(FastPathError, match="pair offsets"):
        _random_steps(world, 1)


def test_stage_decay_lives_in_tunables_and_round_trips_a_snapshot():
    world = _world("kitchen_breakfast", num_envs=1)
    base = world.tunables.base_decay.clone()
    world.set_stage(decay_scale=2.5)
    assert torch.allclose(world.tunables.decay, base * 2.5)
    assert not hasattr(world.layout, "decay"), "the layout is static"
    snapshot = world.snapshot()
    world.set_stage(decay_scale=1.0)
    world.restore(snapshot)
    assert torch.allclose(world.tunables.decay, base * 2.5)
    energy = world.meter("energy").clone()
    world.step(torch.zeros(1, world.layout.num_agents, dtype=torch.int64))  # WAIT
    index = world.names.meters.index("energy")
    assert float(world.meter("energy")[0, 0]) == pytest.approx(
        float(energy[0, 0] - base[index] * 2.5), abs=1e-6
    )
