"""Issue 12: a town whose day can be learned — reward, observations, spread starts, behaviour
cloning with an anneal gate, and an evaluation that explains its numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import act, make_world
from variants import VARIANTS, variant_scripts

from townlet.config.schema import AnnealStageConfig
from townlet.policy.anneal import AnnealSchedule
from townlet.policy.evaluate import random_report, scripted_report
from townlet.policy.imitation import accuracy, clone_epoch, demonstrate
from townlet.policy.network import ActorCritic
from townlet.policy.ppo import Anchor, Batch, ppo_update
from townlet.policy.train import train
from townlet.scenarios import load_config
from townlet.scenarios.build import typed
from townlet.telemetry.summary import summarise
from townlet.telemetry.validate import validate_log
from townlet.util.run_dir import RunDir
from townlet.world import Action, World
from townlet.world.constants import NUM_ACTIONS

ROOT = Path(__file__).resolve().parents[1]
KITCHEN = ["scenario=kitchen_breakfast", "ppo=fast", "ppo.num_envs=8", "train.progress=false"]


@pytest.fixture(scope="module")
def town():
    return typed(load_config([]))


# --------------------------------------------------------------------------- the reward


@pytest.mark.slow
def test_the_scripted_routine_outranks_every_other_life(town):
    """Under the reward, the routine beats eating at home, never sleeping, never working,
    arriving and leaving, and random, each by a clear margin."""
    scripted = scripted_report(town, 8, 1000)["return_mean"]
    for variant in VARIANTS:
        other = scripted_report(town, 8, 1000, variant_scripts(town.scenario, variant))
        assert scripted - other["return_mean"] >= 0.25, (variant, scripted, other["return_mean"])
    assert scripted - random_report(town, 8, 1000)["return_mean"] >= 2.0


BEDROOM = {
    "width": 3,
    "height": 1,
    "affordances": [{"name": "bed", "type": "Bed", "pos": [0, 0]}],
    "agents": [{"id": "ann", "pos": [0, 0], "meters": {"energy": 0.2}}],
}


@pytest.mark.parametrize("mode", ["per_tick", "on_completion"])
def test_an_interrupted_sleep_keeps_what_it_earned_per_tick(mode):
    world = make_world(BEDROOM, {"interaction_effects": mode})
    act(world, Action.INTERACT)
    for _ in range(5):
        act(world, Action.WAIT)
    act(world, Action.RIGHT)  # gets up after 5 of the Bed's 20 ticks
    decay = 7 * 0.0025
    earned = 5 * 0.5 / 20 if mode == "per_tick" else 0.0
    assert float(world.meter("energy")[0, 0]) == pytest.approx(0.2 + earned - decay, abs=1e-5)


OFFICE = {
    "width": 4,
    "height": 1,
    "start_hour": 9.0,
    "ticks": 30,
    "affordances": [{"name": "desk", "type": "Job", "pos": [3, 0]}],
    "agents": [{"id": "ann", "pos": [0, 0], "job": "clerk"}],
}
CLERK = {
    "jobs": {
        "clerk": {
            "location": "desk",
            "shift_start": 9.0,
            "shift_end": 10.0,
            "grace_ticks": 1,
            "wage_per_tick": 0.01,
            "late_penalty": 0.5,
            "absent_penalty": 1.0,
        }
    }
}


def office_terms(plan: list[Action], start: int = 0) -> list[dict[str, float]]:
    scenario = {**OFFICE, "agents": [{"id": "ann", "pos": [start, 0], "job": "clerk"}]}
    world = make_world(scenario, CLERK)
    world.track_terms = True
    rows = []
    for action in plan:
        result = act(world, action)
        rows.append({k: float(v[0, 0]) for k, v in result.terms.items()})
    return rows


def test_lateness_is_charged_at_the_grace_deadline_not_on_arrival():
    # shift ticks 90..99, on time through tick 91; the agent walks in at tick 95
    rows = office_terms([Action.WAIT] * 3 + [Action.RIGHT] * 3 + [Action.WAIT] * 6)
    late = [r["late"] for r in rows]
    assert late[2] == -0.5 and sum(late) == -0.5  # the first late tick, once
    absent = [r["absent"] for r in rows]
    assert absent[:2] == [0.0, 0.0]
    assert all(a == pytest.approx(-1.0 / 8) for a in absent[2:5])  # away after the deadline
    assert absent[5:] == [0.0] * 7  # at work


def test_a_missed_shift_costs_late_plus_absent_and_leaving_work_costs_too():
    missed = office_terms([Action.WAIT] * 12)
    assert sum(r["late"] + r["absent"] for r in missed) == pytest.approx(-1.5)
    walk_in_then_out = [Action.RIGHT] * 2 + [Action.LEFT] * 10
    left = office_terms(walk_in_then_out, start=1)
    assert sum(r["late"] for r in left) == 0.0  # on time
    assert sum(r["absent"] for r in left) == pytest.approx(-1.0)  # but away all the late window


def test_commute_shaping_pays_each_step_toward_work_and_sums_to_zero():
    rows = office_terms([Action.RIGHT] * 3 + [Action.WAIT] * 9)
    commute = [r["commute"] for r in rows]
    assert commute[0] < 0  # the window was already open: the potential appears at once
    assert commute[1] > 0 and commute[2] > 0  # steps toward the desk pay
    assert sum(commute) == pytest.approx(0.0, abs=1e-6)  # arrived: the potential is gone


# --------------------------------------------------------------------------- observations


def test_agents_observe_the_way_to_their_own_workplace_and_bed(town):
    world = World(town.world, town.scenario, num_envs=1, seed=0)
    names = world.names.features
    for name in ("job_dx", "job_dy", "job_distance", "bed_dx", "bed_dy", "bed_distance"):
        assert name in names
    features = world.observe().features[0]
    alice = 0  # at (2, 3), works at the office (10, 1) behind the wall, sleeps in bed_1 (1, 1)
    f = {n: float(features[alice, i]) for i, n in enumerate(names)}
    assert f["job_dx"] == pytest.approx(8 / 13) and f["job_dy"] == pytest.approx(-2 / 9)
    assert f["bed_dx"] == pytest.approx(-1 / 13) and f["bed_dy"] == pytest.approx(-2 / 9)
    # the path through the gap in the wall is longer than the straight line
    assert f["job_distance"] * 22 > abs(8) + abs(2)
    # following the distance downhill, move by move, walks alice to her desk
    for _ in range(30):
        best = None
        for move in (Action.UP, Action.DOWN, Action.LEFT, Action.RIGHT):
            snapshot = world.snapshot()
            actions = torch.zeros(1, world.layout.num_agents, dtype=torch.int64)
            actions[0, alice] = move
            d = float(world.step(actions).obs.features[0, alice, names.index("job_distance")])
            world.restore(snapshot)
            if best is None or d < best[0]:
                best = (d, move)
        actions = torch.zeros(1, world.layout.num_agents, dtype=torch.int64)
        actions[0, alice] = best[1]
        world.step(actions)
        if tuple(world.positions()[0, alice].tolist()) == (10, 1):
            break
    assert tuple(world.positions()[0, alice].tolist()) == (10, 1)


# --------------------------------------------------------------------------- spread starts


def test_training_envs_start_at_spread_hours_and_evaluation_at_the_fixed_one():
    town = typed(load_config(["scenario.start_hour_spread=24"]))
    spread = World(town.world, town.scenario, num_envs=64, seed=3, spread_starts=True)
    hours = spread.time_of_day()
    assert len(set(hours.tolist())) >= 30  # the whole day, not one start hour
    again = World(town.world, town.scenario, num_envs=64, seed=3, spread_starts=True)
    assert torch.equal(again.time_of_day(), hours)  # seeded
    fixed = World(town.world, town.scenario, num_envs=64, seed=3)
    assert set(fixed.time_of_day().tolist()) == {60}  # 06:00
    # an env that ends starts its next episode at a newly drawn hour
    auto = World(town.world, town.scenario, num_envs=8, seed=3, auto_reset=True, spread_starts=True)
    first = auto.state.start_offset.clone()
    for _ in range(town.scenario.ticks):
        auto.step(torch.zeros(8, auto.layout.num_agents, dtype=torch.int64))
    assert bool((auto.state.episode >= 1).all())
    assert not torch.equal(auto.state.start_offset, first)


# --------------------------------------------------------------------------- behaviour cloning


def test_a_clone_of_the_scripted_routine_reproduces_its_actions(town):
    config = typed(load_config(["train.bc.demo_envs=8", "train.bc.noise=[0.0]"]))
    demos = demonstrate(config, seed=5)
    allowed = demos.masks.gather(1, demos.labels.unsqueeze(1))
    assert bool(allowed.all())  # no label the mask forbids
    torch.manual_seed(0)
    world = World(config.world, config.scenario)
    net = ActorCritic(world.layout.window, len(world.names.features), NUM_ACTIONS, 64, 4)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    before = accuracy(net, demos)
    for _ in range(40):
        clone_epoch(net, optimizer, demos, 1024, 0.5, generator, 0.5)
    assert accuracy(net, demos) >= 0.9 > before


def test_the_anneal_gate_passes_rolls_back_and_skips_ppo_after_a_failed_clone():
    stages = [
        AnnealStageConfig("bc", 2),
        AnnealStageConfig("ppo", 1),
        AnnealStageConfig("bc", 1),
        AnnealStageConfig("ppo", 3),
    ]
    schedule = AnnealSchedule(stages, threshold=0.9)
    good = {"w": torch.ones(2)}
    assert schedule.mode == "bc" and schedule.cycle == 0
    assert not schedule.bc_epoch_done(0.95, good).phase_over  # the gate is judged at the end
    gate = schedule.bc_epoch_done(0.92, good)
    assert gate.passed and schedule.mode == "ppo"
    schedule.ppo_epoch_done()
    assert schedule.mode == "bc" and schedule.cycle == 1
    gate = schedule.bc_epoch_done(0.4, {"w": torch.zeros(2)})
    assert not gate.passed and gate.rolled_back
    assert torch.equal(schedule.gate_weights["w"], good["w"])
    assert schedule.finished  # the PPO phase after a failed clone never runs


def test_the_anneal_gate_needs_the_last_passes_accuracy_only():
    schedule = AnnealSchedule(
        [AnnealStageConfig("bc", 3), AnnealStageConfig("ppo", 1)], threshold=0.9
    )
    weights = {"w": torch.ones(2)}
    assert not schedule.gate_is_next
    for _ in range(2):  # not measured: no verdict
        assert not schedule.bc_epoch_done(None, weights).phase_over
    assert schedule.gate_is_next
    with pytest.raises(ValueError, match="last pass"):
        schedule.bc_epoch_done(None, weights)


@pytest.mark.slow
def test_an_anneal_run_logs_version_1_2_records_and_is_deterministic(tmp_path):
    args = [
        *KITCHEN,
        "train.bc.demo_envs=8",
        "train.bc.minibatch=32",
        "train.bc.learning_rate=0.01",
        "train.anneal=[{mode: bc, epochs: 3}, {mode: ppo, epochs: 2}]",
        "train.anneal_threshold=0.5",
        "train.eval_episodes=4",
    ]
    runs = []
    for name in ("a", "b"):
        train(load_config(args), tmp_path / name)
        runs.append(tmp_path / name)
    records = [r for _, r in validate_log(runs[0] / "telemetry" / "ppo.jsonl")]
    assert [r["data_mode"] for r in records] == ["bc", "bc", "bc", "rollout", "rollout"]
    assert {r["telemetry_version"] for r in records} == {1.2}
    assert all(r["anneal_cycle"] == 0 and r["anneal_bc_threshold"] == 0.5 for r in records)
    assert [r["anneal_stage"] for r in records] == ["bc"] * 3 + ["ppo"] * 2
    assert records[2]["anneal_bc_passed"] and records[2]["anneal_bc_accuracy"] >= 0.5
    anneal = summarise(runs[0] / "telemetry" / "ppo.jsonl")["anneal"]
    assert anneal["stage"] == "ppo" and anneal["bc_threshold"] == 0.5

    def strip(run: Path) -> list[dict]:
        rows = [json.loads(x) for x in (run / "telemetry" / "ppo.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if "sec" not in k} for r in rows]

    assert strip(runs[0]) == strip(runs[1])
    weights = [torch.load(r / "checkpoints" / "latest.pt", weights_only=True) for r in runs]
    for key, value in weights[0]["model"].items():
        assert torch.equal(value, weights[1]["model"][key])


def test_epochs_measure_the_clone_every_n_epochs_and_learn_the_same(tmp_path):
    """`train.bc.accuracy_every` only thins the telemetry: the weights do not change. A BC
    phase is measured every n passes and at its last (the gate's), PPO every n epochs."""
    args = [
        *KITCHEN,
        "train.bc.demo_envs=4",
        "train.anneal=[{mode: bc, epochs: 3}, {mode: ppo, epochs: 3}]",
        "train.anneal_threshold=0.0",
        "train.eval_episodes=2",
    ]
    runs = {}
    for every in (1, 2):
        run = tmp_path / f"every_{every}"
        train(load_config([*args, f"train.bc.accuracy_every={every}"]), run)
        runs[every] = run
    records = [r for _, r in validate_log(runs[2] / "telemetry" / "ppo.jsonl")]
    measured = [r["epoch"] for r in records if "anneal_bc_accuracy" in r]
    assert [r["anneal_stage"] for r in records] == ["bc"] * 3 + ["ppo"] * 3
    assert measured == [2, 3, 4, 6], "BC's second and last passes, then every second epoch"
    assert all(("anneal_bc_passed" in r) == (r["epoch"] in measured) for r in records)
    every_epoch = [r for _, r in validate_log(runs[1] / "telemetry" / "ppo.jsonl")]
    assert all("anneal_bc_accuracy" in r for r in every_epoch)
    weights = [
        torch.load(r / "checkpoints" / "latest.pt", weights_only=True) for r in runs.values()
    ]
    for key, value in weights[0]["model"].items():
        assert torch.equal(value, weights[1]["model"][key]), key


def test_a_failed_gate_skips_ppo(tmp_path):
    args = [
        *KITCHEN,
        "train.bc.demo_envs=4",
        "train.anneal=[{mode: bc, epochs: 1}, {mode: ppo, epochs: 2}]",
        "train.anneal_threshold=1.0",
        "train.eval_episodes=4",
    ]
    result = train(load_config(args), tmp_path)
    records = [r for _, r in validate_log(tmp_path / "telemetry" / "ppo.jsonl")]
    assert [r["data_mode"] for r in records] == ["bc"]
    assert records[0]["anneal_bc_passed"] is False and result.epochs == 1


# --------------------------------------------------------------------------- evaluation


def test_evaluation_splits_the_return_and_says_what_agents_did(town):
    report = scripted_report(town, 16, 1000)
    assert report["episodes"] >= 16 and report["seeds"] >= 4
    assert sum(report["components"].values()) == pytest.approx(report["return_mean"], abs=1e-4)
    behaviour = report["behaviour"]
    assert behaviour["on_time_rate"] == 1.0 and behaviour["absent_rate"] == 0.0
    assert behaviour["faints_per_agent_day"] == 0.0
    assert behaviour["completions_per_agent_day"]["Bed"] == pytest.approx(1.0)
    noise = random_report(town, 16, 1000)
    assert sum(noise["components"].values()) == pytest.approx(noise["return_mean"], abs=1e-4)
    assert noise["behaviour"]["faints_per_agent_day"] > 0


@pytest.mark.slow
def test_townlet_evaluate_prints_the_table_for_a_checkpoint(tmp_path):
    train(load_config([*KITCHEN, "train.total_ticks=32", "train.eval_episodes=4"]), tmp_path)
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    for who in ("policy_deterministic", "policy_sampled", "scripted", "random"):
        part = evaluation[who]
        assert sum(part["components"].values()) == pytest.approx(part["return_mean"], abs=1e-4)
        assert "on_time_rate" in part["behaviour"]

    def evaluate_cli(checkpoint: Path) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "townlet", "evaluate", str(checkpoint)]
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)

    done = evaluate_cli(tmp_path / "checkpoints" / "latest.pt")
    assert done.returncode == 0, done.stderr
    for row in ("return_mean", "need.satiation", "on_time_rate", "Stove/agent-day"):
        assert row in done.stdout
    bad = evaluate_cli(tmp_path / "nope.pt")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_a_policy_cloned_from_a_scripted_capture_reproduces_its_actions(tmp_path):
    """The capture on disk (experiments/capture.py's files) is the teacher."""
    from townlet.capture.run import capture
    from townlet.policy.imitation import demonstrations_from_captures

    capture(load_config([]), tmp_path / "town")
    config = typed(load_config([]))
    world = World(config.world, config.scenario)
    demos = demonstrations_from_captures(tmp_path, world)
    assert len(demos) == 4 * 240 and demos.label.startswith("captures:")
    assert float(demos.returns[0]) > 0  # the script's discounted return-to-go
    torch.manual_seed(0)
    net = ActorCritic(world.layout.window, len(world.names.features), NUM_ACTIONS, 64, 4)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        clone_epoch(net, optimizer, demos, 256, 0.5, generator, 0.5)
    assert accuracy(net, demos) >= 0.9


def test_an_anchor_to_the_demonstrations_holds_a_clone_against_a_contrary_advantage(town):
    """PPO fine-tuning of a clone (`train.bc.ppo_anchor`): an advantage that rewards WAIT
    everywhere pulls a clone off the routine; the demonstrations' cross-entropy in each
    minibatch holds it near."""
    config = typed(load_config(["train.bc.demo_envs=4", "train.bc.noise=[0.0]"]))
    demos = demonstrate(config, seed=5)
    world = World(config.world, config.scenario)
    torch.manual_seed(0)
    net = ActorCritic(world.layout.window, len(world.names.features), NUM_ACTIONS, 64, 4)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(10):
        clone_epoch(net, optimizer, demos, 1024, 0.5, torch.Generator().manual_seed(0), 0.5)
    cloned = {k: v.clone() for k, v in net.state_dict().items()}
    wait = torch.full_like(demos.labels, int(Action.WAIT))

    def label_loss() -> float:
        with torch.no_grad():
            _, logprob, *_ = net.get_action_and_value(
                demos.codes, demos.features, demos.masks, action=demos.labels
            )
        return float(-logprob.mean())

    ppo = typed(load_config()).ppo
    after = {}
    for weight in (0.0, 1.0):
        net.load_state_dict(cloned)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        anchor = Anchor(demos, weight) if weight else None
        for round_ in range(4):  # each round's behaviour is the policy as it now is
            with torch.no_grad():
                _, logprob, _, value, _ = net.get_action_and_value(
                    demos.codes, demos.features, demos.masks, action=wait
                )
            contrary = Batch(
                demos.codes, demos.features, demos.masks, wait, logprob, None,
                value, torch.ones_like(value), value,
            )  # fmt: skip
            stats = ppo_update(
                net, optimizer, contrary, ppo, torch.Generator().manual_seed(round_), anchor
            )
            assert ("loss_anchor" in stats) == bool(weight)
        after[weight] = label_loss()
    assert after[1.0] < 0.5 * after[0.0], after


@pytest.mark.slow
def test_selection_makes_the_best_validated_weights_the_runs_policy(tmp_path):
    """`train.select_every`: validations on held-out seeds pick the weights the run ends with
    (checkpoints/selected.pt); the final evaluation reports exactly those, and the choice is
    deterministic. Off by default: no selected.pt."""
    from townlet.policy.evaluate import evaluate_checkpoint
    from townlet.policy.selection import VALIDATION_SEED_OFFSET
    from townlet.serve.live import policy_checkpoint_name

    args = [
        *KITCHEN,
        "train.bc.demo_envs=8",
        "train.bc.minibatch=32",
        "train.anneal=[{mode: bc, epochs: 2}, {mode: ppo, epochs: 6}]",
        "train.anneal_threshold=0.0",
        "train.eval_episodes=4",
        "train.select_every=2",
        "train.select_episodes=4",
    ]
    results = [train(load_config(args), tmp_path / name) for name in ("a", "b")]
    result, run = results[0], tmp_path / "a"
    selection = result.selection
    assert selection["validations"] == 3, "after PPO epochs 2, 4 and 6"
    assert result.selected_epoch == selection["epoch"] in (4, 6, 8)  # BC took epochs 1-2
    assert results[1].selection == selection, "the same config chooses the same weights"
    saved = torch.load(run / "checkpoints" / "selected.pt", weights_only=True)
    assert saved["selection"]["epoch"] == selection["epoch"] == saved["epoch"]
    entry = json.loads((run / "evaluation.json").read_text())
    assert entry["selection"] == selection
    again = evaluate_checkpoint(run / "checkpoints" / "selected.pt", [], 4, None)
    assert again["policy_deterministic"]["return_mean"] == pytest.approx(
        entry["policy_deterministic"]["return_mean"]
    ), "the evaluation is of the selected weights"
    assert VALIDATION_SEED_OFFSET != 1000, "validation never plays the evaluation's seeds"
    plain = train(load_config(args[:-2]), tmp_path / "plain")
    assert plain.selection is None
    assert not (tmp_path / "plain" / "checkpoints" / "selected.pt").exists()
    # the viewer's Live button plays the run's policy: the selected weights where there are
    assert policy_checkpoint_name(run) == "selected"
    assert policy_checkpoint_name(tmp_path / "plain") == "latest"


def test_selection_restores_earlier_weights_when_later_ones_validate_worse(tmp_path):
    from townlet.policy.selection import Selection

    # ann starts on the stove, so a policy that INTERACTs wherever it may eats at once
    # (elsewhere its walk depended on the random initial weights)
    config = typed(
        load_config(
            [*KITCHEN, "train.select_every=1", "train.select_episodes=4"]
            + ["scenario.agents.0.pos=[2,0]"]
        )
    )
    world = World(config.world, config.scenario)
    torch.manual_seed(0)
    net = ActorCritic(world.layout.window, len(world.names.features), NUM_ACTIONS, 64, 4)
    with torch.no_grad():  # a policy that eats: INTERACT wherever it may (the kitchen's stove)
        net.actor.bias[int(Action.INTERACT)] = 50.0
    eats = {k: v.clone() for k, v in net.state_dict().items()}
    selection = Selection.for_run(config, RunDir.of(tmp_path), resumed=False)
    good = selection.validate(config, net, 1, {"model": net.state_dict(), "epoch": 1})
    with torch.no_grad():  # then one that only waits and goes hungry
        net.actor.bias.zero_()
        net.actor.bias[int(Action.WAIT)] = 50.0
    worse = selection.validate(config, net, 2, {"model": net.state_dict(), "epoch": 2})
    assert worse < good and selection.best_epoch == 1
    assert selection.restore_best(net, last_epoch=2)
    for key, value in net.state_dict().items():
        assert torch.equal(value, eats[key]), key
    resumed = Selection.for_run(config, RunDir.of(tmp_path), resumed=True)
    assert (resumed.best_epoch, resumed.best_return) == (1, good)
