"""What lets a policy learn a day from its own reward: start-state spreads for training (meters,
anywhere, seated in a long interaction), the shift slack observation, and the scratch recipe."""

from __future__ import annotations

import pytest
import torch

from townlet.policy.evaluate import random_report, scripted_report
from townlet.scenarios import load_config
from townlet.scenarios.build import typed
from townlet.world import Action, World

SPREADS = [
    "scenario.start_meter_spread=0.3",
    "scenario.start_anywhere=1.0",
    "scenario.start_seated=0.5",
]


def worlds(*overrides: str, envs: int = 64, auto_reset: bool = False):
    town = typed(load_config([*SPREADS, *overrides]))
    make = lambda spread: World(  # noqa: E731
        town.world,
        town.scenario,
        num_envs=envs,
        seed=5,
        spread_starts=spread,
        auto_reset=auto_reset,
    )
    return make(True), make(False), town


def test_training_starts_spread_over_meters_places_and_seats_and_evaluation_does_not():
    spread, fixed, town = worlds()
    layout = fixed.layout
    initial = layout.initial_meters.expand_as(fixed.state.meters)
    assert torch.equal(fixed.state.meters, initial)
    assert torch.equal(fixed.state.pos, layout.start_cell.expand_as(fixed.state.pos))
    assert bool((fixed.state.using < 0).all())
    meters = spread.state.meters
    assert bool(((meters - initial).abs() <= 0.3 + 1e-6).all())
    assert bool((meters >= 0.1).all()) and bool((meters <= 1.0).all())
    assert (meters - initial).abs().max() > 0.2  # spread, not a copy
    assert bool(torch.take(layout.walkable, spread.state.pos).all())
    seated = spread.state.using >= 0
    assert len(set(spread.state.pos[~seated].tolist())) > 20  # anywhere on the map
    # about half the agents sit in a long interaction on its tile, open at every hour, one
    # agent an instance
    assert 0.35 < seated.float().mean() < 0.65
    for row in spread.state.using:
        taken = row[row >= 0].tolist()
        assert len(taken) == len(set(taken))
    inst = spread.state.using[seated]
    assert torch.equal(spread.state.pos[seated], layout.inst_cell[inst])
    kinds = {layout.affordance_types[int(layout.inst_type[i])] for i in inst.tolist()}
    assert kinds <= {"Bed", "Shower", "Stove"} and "Bed" in kinds
    again, _, _ = worlds()
    for name in ("meters", "pos", "using"):
        assert torch.equal(getattr(again.state, name), getattr(spread.state, name)), name


def test_a_seated_agent_earns_while_it_stays_and_new_episodes_draw_again():
    spread, _, town = worlds(envs=16, auto_reset=True)
    spread.check_fast_path = True  # the engaged fact must know about the seated agents
    seated = spread.state.using >= 0
    energy = spread.layout.meter_names.index("energy")
    bed = (
        torch.tensor(
            [
                spread.layout.affordance_types[int(spread.layout.inst_type[u])] == "Bed"
                for u in spread.state.using.clamp(min=0).flatten().tolist()
            ]
        ).view_as(seated)
        & seated
    )
    before = spread.state.meters[..., energy].clone()
    stay = torch.full_like(spread.state.pos, int(Action.WAIT))
    for _ in range(3):
        spread.step(stay)
    gained = spread.state.meters[..., energy] - before
    room = bed & (before < 0.9)
    assert room.any() and bool((gained[room] > 0.06).all())  # 3 ticks of 0.025, less decay
    first = spread.state.pos.clone()
    for _ in range(town.scenario.ticks):
        spread.step(stay)
    assert not torch.equal(spread.state.pos, first)


def test_the_shift_slack_counts_ticks_to_the_deadline_less_the_walk():
    town = typed(load_config([]))
    world = World(town.world, town.scenario, num_envs=1, seed=0)
    slack = world.feature_index["shift_slack"]
    layout = world.layout
    before = world.observe().features[0, :, slack].clone()
    world.step(torch.zeros(1, layout.num_agents, dtype=torch.int64))  # everyone waits a tick
    after = world.observe().features[0, :, slack]
    # waiting costs exactly one tick of slack (1/20) to whoever is not clipped at +-1
    moved = before.abs() < 1
    assert moved.any()
    assert torch.allclose(before[moved] - after[moved], torch.full_like(after[moved], 1 / 20))
    walk = torch.take(layout.job_ticks, layout.agent_cell_base + world.state.pos[0])
    deadline = torch.take(layout.shift_deadline_in, layout.agent_tod_base + world.time_of_day())
    expected = ((deadline - walk) / 20).clamp(-1, 1)
    assert torch.allclose(after, expected)


@pytest.mark.parametrize(
    ("hour", "cafe", "bar", "park"),
    [(12, 1.0, 0.0, 1.0), (17.5, 1.0, 1.0, 1.0), (22, 0.0, 1.0, 0.0)],
)
def test_opening_hours_are_observed_without_walking_to_the_door(hour, cafe, bar, park):
    """The cafe's posted hours (7-20), the bar's (17-02) and the park's (6-21) are features;
    always-open affordances and workplaces have none."""
    without = typed(load_config([f"scenario.start_hour={hour}"]))
    assert not any(
        n.startswith("open_") for n in World(without.world, without.scenario).names.features
    )
    town = typed(
        load_config([f"scenario.start_hour={hour}", "world.observation.opening_hours=true"])
    )
    world = World(town.world, town.scenario, num_envs=1, seed=0)
    names = [n for n in world.names.features if n.startswith("open_")]
    assert names == ["open_bar", "open_cafe", "open_park"]
    features = world.observe().features[0]
    for name, expected in (("open_cafe", cafe), ("open_bar", bar), ("open_park", park)):
        assert torch.all(features[:, world.feature_index[name]] == expected), name


def test_interaction_shaping_pays_a_bed_at_once_and_charges_leaving_early():
    def one_agent_on_a_bed(weight: float) -> World:
        town = typed(load_config([f"world.reward.interaction_shaping={weight}"]))
        world = World(town.world, town.scenario, num_envs=1, seed=0)
        bed = world.layout.instance_names.index("bed_1")
        world.state.pos[0, 0] = world.layout.inst_cell[bed]
        world.state.meters[0, 0, world.layout.meter_names.index("energy")] = 0.3
        return world

    def rewards(world: World, first: Action) -> tuple[float, float]:
        stay = torch.zeros(1, world.layout.num_agents, dtype=torch.int64)
        start = stay.clone()
        start[0, 0] = int(Action.INTERACT)
        leave = stay.clone()
        leave[0, 0] = int(first)
        got = [float(world.step(start).reward[0, 0])]
        for _ in range(4):
            world.step(stay)
        got.append(float(world.step(leave).reward[0, 0]))
        return got[0], got[1]

    plain_start, plain_leave = rewards(one_agent_on_a_bed(0.0), Action.DOWN)
    shaped_start, shaped_leave = rewards(one_agent_on_a_bed(1.0), Action.DOWN)
    # a 20-tick Bed pays 0.5 energy (weight 1); started at 0.3 energy all of it fits
    assert shaped_start - plain_start == pytest.approx(0.5, abs=1e-4)
    # leaving after 4 paid ticks forfeits the 16 ticks still to pay
    assert plain_leave - shaped_leave == pytest.approx(16 * 0.025, abs=1e-4)


@pytest.mark.parametrize(
    ("override", "term"),
    [
        ("world.reward.interaction_shaping=1.0", "interaction"),
        ("world.reward.rest_shaping=5.0", "rest"),
    ],
)
def test_shaping_leaves_every_episode_return_unchanged(override, term):
    shaped = typed(load_config([override]))
    plain = typed(load_config([]))
    for report in (scripted_report, lambda c, e, s: random_report(c, e, s)):
        with_shaping, without = report(shaped, 4, 11), report(plain, 4, 11)
        assert with_shaping["return_mean"] == pytest.approx(without["return_mean"], abs=1e-4)
        assert with_shaping["components"][term] == pytest.approx(0.0, abs=1e-4)
        assert sum(with_shaping["components"].values()) == pytest.approx(
            with_shaping["return_mean"], abs=1e-4
        )


def test_rest_shaping_pays_walking_home_tired_and_charges_walking_away():
    town = typed(load_config(["world.reward.rest_shaping=2.0", "scenario.start_hour=22"]))
    world = World(town.world, town.scenario, num_envs=1, seed=0, track_terms=True)
    layout, energy = world.layout, world.layout.meter_names.index("energy")
    bed = layout.instance_names.index("bed_1")  # alice's bed at (1, 1)
    world.state.pos[0, 0] = layout.inst_cell[bed] + 3 * layout.padded_width  # (1, 4)
    world.state.meters[0, :, energy] = 0.3
    wait = torch.zeros(1, layout.num_agents, dtype=torch.int64)
    up, down = wait.clone(), wait.clone()
    up[0, 0], down[0, 0] = int(Action.UP), int(Action.DOWN)
    distance = lambda: float(  # noqa: E731
        torch.take(layout.bed_distance, layout.agent_cell_base[0] + world.state.pos[0, 0])
    )
    before = distance()
    toward = float(world.step(up).terms["rest"][0, 0])
    step = before - distance()
    assert step > 0 and toward > 0
    tired = 0.5 - (0.3 - town.world.meters["energy"].decay)
    assert toward == pytest.approx(2.0 * step * tired, rel=0.05)  # energy decays a little too
    away = float(world.step(down).terms["rest"][0, 0])
    assert away < 0
    rested = typed(load_config(["world.reward.rest_shaping=2.0"]))
    rested_world = World(rested.world, rested.scenario, num_envs=1, seed=0, track_terms=True)
    assert float(rested_world.step(wait).terms["rest"].abs().sum()) == 0.0  # energy 0.8: none


def test_the_world_keeps_the_observation_at_the_tick_limit_for_bootstrapping():
    town = typed(
        load_config(["scenario.start_hour_spread=24", "world.meters.satiation.decay=0.001"])
    )
    world = World(
        town.world,
        town.scenario,
        num_envs=8,
        seed=2,
        auto_reset=True,
        spread_starts=True,
        keep_final_obs=True,
    )
    wait = torch.zeros(8, world.layout.num_agents, dtype=torch.int64)
    for _ in range(town.scenario.ticks - 1):
        result = world.step(wait)
        assert result.final_obs is None  # nothing ended yet
        before = world.state.meters.clone()
    result = world.step(wait)
    assert bool(result.env_done.all()) and result.final_obs is not None
    energy = world.layout.meter_names.index("energy")
    final = result.final_obs.features[..., energy]
    # the final observation is of the day's last state, the next of the new episode's first
    decay = town.world.meters["energy"].decay
    assert torch.allclose(final, (before[..., energy] - decay).clamp(min=0), atol=1e-6)
    assert torch.allclose(result.obs.features[..., energy], world.layout.initial_meters[:, energy])


def assert_option_is_deterministic_and_matters(tmp_path, scenario: str, option: str) -> None:
    """Two short runs with `option` give identical weights; a run without it does not."""
    from townlet.policy.train import train

    overrides = [
        f"scenario={scenario}",
        "ppo=fast",
        "ppo.num_envs=8",
        "train.total_ticks=96",
        "tracking=off",
        "recording=off",
        "train.progress=false",
    ]

    def weights(name: str, *extra: str) -> dict[str, torch.Tensor]:
        train(load_config([*overrides, *extra]), tmp_path / name)
        return torch.load(tmp_path / name / "checkpoints" / "latest.pt", weights_only=False)[
            "model"
        ]

    first, again, plain = weights("a", option), weights("b", option), weights("c")
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], plain[k]) for k in first)


def test_bootstrapping_truncated_days_trains_deterministically(tmp_path):
    assert_option_is_deterministic_and_matters(
        tmp_path, "kitchen_breakfast", "ppo.bootstrap_truncated=true"
    )


def test_a_duration_stage_shortens_long_interactions_and_pays_the_same():
    town = typed(load_config([]))
    world = World(town.world, town.scenario, num_envs=1, seed=0)
    layout = world.layout
    bed = layout.instance_names.index("bed_1")
    energy = layout.meter_names.index("energy")
    full_duration = int(layout.inst_duration[bed])
    total = float(layout.inst_rate[bed, energy]) * full_duration
    one_tick = [i for i in range(len(layout.instance_names)) if int(layout.inst_duration[i]) <= 1]
    world.set_stage(duration_scale=0.25)
    assert int(layout.inst_duration[bed]) == round(full_duration * 0.25)
    assert float(layout.inst_rate[bed, energy]) * int(layout.inst_duration[bed]) == pytest.approx(
        total
    )
    world.set_stage(duration_scale=1.0)
    assert int(layout.inst_duration[bed]) == full_duration
    for i in one_tick:  # what was a tick stays a tick
        assert int(layout.inst_duration[i]) == 1
    # evaluation worlds are built afresh: a training stage never reaches them
    assert int(World(town.world, town.scenario).layout.inst_duration[bed]) == full_duration


def test_curriculum_stages_can_follow_each_other_by_epochs():
    from townlet.config.schema import CurriculumConfig, StageConfig
    from townlet.curriculum import Curriculum

    town = typed(load_config([]))
    world = World(town.world, town.scenario, num_envs=1, seed=0)
    bed = world.layout.instance_names.index("bed_1")
    stages = [StageConfig(duration_scale=0.25, min_epochs=3), StageConfig()]
    curriculum = Curriculum(CurriculumConfig(stages=stages, window=1, survival_threshold=0.0))
    curriculum.apply(world)
    assert int(world.layout.inst_duration[bed]) == 5
    advanced = []
    for epoch in range(1, 6):
        curriculum.record([1.0])
        advanced.append(curriculum.maybe_advance(world, epoch))
    assert advanced == [False, False, True, False, False]
    assert int(world.layout.inst_duration[bed]) == 20
    restored = Curriculum(CurriculumConfig(stages=stages, window=1, survival_threshold=0.0))
    restored.load_state_dict(curriculum.state_dict())
    assert restored.stage == 2


def test_the_shaping_potential_is_what_the_shaping_terms_pay_differences_of():
    town = typed(
        load_config(["world.reward.interaction_shaping=1.0", "world.reward.rest_shaping=2.0"])
    )
    world = World(town.world, town.scenario, num_envs=2, seed=0, track_terms=True)
    world.state.meters[..., world.layout.meter_names.index("energy")] = 0.2
    wait = torch.zeros(2, world.layout.num_agents, dtype=torch.int64)
    before = world.shaping_potential()
    result = world.step(wait)
    after = world.shaping_potential()
    paid = result.terms["commute"] + result.terms["interaction"] + result.terms["rest"]
    assert torch.allclose(after - before, paid, atol=1e-6)
    assert (after < 0).any()  # the shop's commute window is open at 06:00: away from work


def test_discounted_shaping_trains_deterministically_and_changes_the_update(tmp_path):
    assert_option_is_deterministic_and_matters(
        tmp_path, "employment_punctuality", "ppo.discount_shaping=true"
    )


def test_the_novelty_bonus_pays_rare_tiles_and_hours_and_vanishes():
    from townlet.policy.novelty import VisitCounts, beta_at

    counts = VisitCounts(cells=10, ticks_per_day=240, device=torch.device("cpu"))
    pos = torch.tensor([[3, 3, 7]])  # two agents on one tile, one elsewhere
    alive = torch.ones(1, 3, dtype=torch.bool)
    first = counts.bonus(pos, torch.tensor([0]), alive, beta=1.0)
    # the shared tile has been visited twice this tick, the other once
    assert torch.allclose(first, torch.tensor([[2**-0.5, 2**-0.5, 1.0]]))
    again = counts.bonus(pos, torch.tensor([5]), alive, beta=1.0)  # 00:30: the same hour
    assert torch.allclose(again, torch.tensor([[0.5, 0.5, 2**-0.5]]))
    later = counts.bonus(pos, torch.tensor([10]), alive, beta=1.0)  # 01:00: a new hour
    assert torch.allclose(later, first)
    fainted = counts.bonus(pos, torch.tensor([10]), torch.zeros(1, 3, dtype=torch.bool), 1.0)
    assert float(fainted.abs().sum()) == 0.0
    restored = VisitCounts(cells=10, ticks_per_day=240, device=torch.device("cpu"))
    restored.load_state_dict(counts.state_dict())
    assert torch.equal(restored.counts, counts.counts)
    assert beta_at(0.2, 0.5, 0.0) == 0.2 and beta_at(0.2, 0.5, 0.25) == pytest.approx(0.1)
    assert beta_at(0.2, 0.5, 0.5) == 0.0 and beta_at(0.2, 0.5, 0.9) == 0.0


def test_the_novelty_bonus_trains_deterministically_and_changes_the_update(tmp_path):
    assert_option_is_deterministic_and_matters(
        tmp_path, "kitchen_breakfast", "ppo.novelty_bonus=0.5"
    )
