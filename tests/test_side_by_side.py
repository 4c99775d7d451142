"""Envs of several worlds stepped in one batch go on exactly as in their own worlds, and an
evaluation played that way reports what it reports group by group."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from townlet.policy.choosers import PolicyChooser
from townlet.policy.evaluate import play, policy_report
from townlet.policy.network import ActorCritic
from townlet.scenarios import load_config
from townlet.world import World
from townlet.world.constants import NUM_ACTIONS
from townlet.world.side_by_side import side_by_side


def _world(cfg, envs: int, seed: int, **options) -> World:
    return World(cfg.world, cfg.scenario, num_envs=envs, seed=seed, **options)


def _actions(obs, world: World, generator: torch.Generator) -> torch.Tensor:
    """Random allowed actions, INTERACT wherever an affordance is (queues and tie-breaks)."""
    noise = torch.rand(obs.action_mask.shape, generator=generator)
    actions = (noise * obs.action_mask).argmax(-1)
    on_affordance = torch.take(world.layout.tile_instance, world.state.pos) >= 0
    return torch.where(obs.action_mask[..., 5] & on_affordance, 5, actions)


def _trace(result) -> list[torch.Tensor]:
    events = [v for v in dataclasses.asdict(result.events).values() if isinstance(v, torch.Tensor)]
    obs = result.obs
    return [obs.map_codes, obs.features, obs.action_mask, result.reward, *events]


@pytest.mark.parametrize("scenario", ["town", "village", "town_week"])
def test_envs_side_by_side_go_on_as_in_their_own_worlds(scenario):
    cfg = load_config([f"scenario={scenario}"])
    options = {"spread_starts": True, "track_terms": True}
    parts = [_world(cfg, 2, 3, **options), _world(cfg, 3, 11, **options)]
    generators = [torch.Generator().manual_seed(i) for i in range(len(parts))]
    observations = [w.observe() for w in parts]
    for _ in range(20):  # joined mid-episode, not only at the start
        observations = [
            w.step(_actions(o, w, g)).obs
            for w, o, g in zip(parts, observations, generators, strict=True)
        ]
    joined = side_by_side(parts, lambda envs: _world(cfg, envs, 0, check_fast_path=True, **options))
    contention = 0
    for _ in range(150):
        actions = [
            _actions(o, w, g) for w, o, g in zip(parts, observations, generators, strict=True)
        ]
        alone = [w.step(a) for w, a in zip(parts, actions, strict=True)]
        together = joined.step(torch.cat(actions))
        for got, *wanted in zip(_trace(together), *map(_trace, alone), strict=True):
            assert torch.equal(got, torch.cat(wanted))
        contention += int(together.events.contention.sum())
        observations = [r.obs for r in alone]
    assert contention > 0, "the envs must contend for something"
    for field in dataclasses.fields(joined.state):
        parts_field = [getattr(w.state, field.name) for w in parts]
        assert torch.equal(getattr(joined.state, field.name), torch.cat(parts_field)), field.name


def test_side_by_side_refuses_a_batch_that_resets_and_an_empty_list():
    cfg = load_config()
    parts = [_world(cfg, 1, 1), _world(cfg, 1, 2)]
    with pytest.raises(ValueError, match="cannot reset"):
        side_by_side(parts, lambda envs: _world(cfg, envs, 0, auto_reset=True))
    with pytest.raises(ValueError, match="at least one"):
        side_by_side([], lambda envs: _world(cfg, envs, 0))


@pytest.mark.parametrize("deterministic", [True, False])
def test_an_evaluation_side_by_side_reports_what_its_groups_report(deterministic):
    """Greedy, or sampled with each group's noise from its own generator."""
    cfg = load_config()
    probe = _world(cfg, 1, 0)
    torch.manual_seed(4)
    net = ActorCritic(probe.layout.window, len(probe.names.features), NUM_ACTIONS)
    by_groups = play(cfg, lambda _w, s: PolicyChooser(net, deterministic, s), 8, 77)
    assert policy_report(cfg, net, 8, 77, deterministic) == by_groups
    assert by_groups["seeds"] == 4
    other_seed = policy_report(cfg, net, 8, 78, deterministic)
    assert deterministic or other_seed["return_mean"] != by_groups["return_mean"]
