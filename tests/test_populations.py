"""Populations: focal and background agents in one world (slots, their sources, the PPO batch,
evaluation by group, and the metrics against hand-computed cases)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from townlet.config.errors import ConfigError
from townlet.policy.checkpoint import CheckpointError
from townlet.policy.evaluate import policy_report, random_report, scripted_report
from townlet.policy.population import Background, focal_agents, source_names
from townlet.policy.population_eval import gini, normalised, per_capita
from townlet.scenarios import load_config
from townlet.scenarios.build import typed
from townlet.world import World

COWORKERS = "population=scripted_coworkers"


def test_slots_name_the_scenarios_agents_once_and_leave_a_focal_one():
    config = typed(load_config([COWORKERS]))
    assert focal_agents(config).tolist() == [True, False, True, False]
    assert source_names(config) == ["focal", "scripted", "focal", "scripted"]
    assert focal_agents(typed(load_config([]))).all()
    refusals = {
        "population.background=[{agents:[zed]}]": "population.background.0.agents: 'zed'",
        "population.background=[{agents:[bob]},{agents:[bob],source:random}]": "two background",
        "population.background=[{agents:[bob],source:checkpoint}]": "background.0.checkpoint",
        "population.background=[{agents:[bob],checkpoint:x.pt}]": "background.0.checkpoint",
        "population.background=[{agents:[alice,bob,carol,dave]}]": "none is focal",
        "population.background=[{agents:[]}]": "background.0.agents: empty",
    }
    for override, words in refusals.items():
        with pytest.raises(ConfigError, match=words.replace(".", r"\.")) as error:
            load_config([override])
        assert "\n" not in str(error.value)


def test_gini_and_normalisation_match_hand_computed_cases():
    assert gini(np.array([1.0, 1.0, 1.0, 1.0])) == 0.0
    # one agent holds everything: mean |x_i - x_j| over ordered pairs = 24 / 16, mean |x| = 1
    assert gini(np.array([0.0, 0.0, 0.0, 4.0])) == pytest.approx(0.75)
    assert gini(np.array([1.0, 3.0])) == pytest.approx((2 * 2 / 4) / (2 * 2))
    assert gini(np.array([0.0, 0.0])) is None
    assert gini(np.array([2.0, np.nan, 2.0])) == 0.0  # an agent left out does not count
    assert normalised(2.0, random=0.0, scripted=4.0) == 0.5
    assert normalised(-1.0, random=-1.0, scripted=3.0) == 0.0
    assert normalised(3.0, random=-1.0, scripted=3.0) == 1.0
    assert normalised(1.0, random=2.0, scripted=2.0) is None
    returns = np.array([[1.0, 2.0, 3.0, 4.0], [3.0, 2.0, 5.0, 0.0]])
    focal = np.array([True, False, True, False])
    value, interval = per_capita(returns, focal)
    assert value == pytest.approx(3.0)  # (1 + 3 + 3 + 5) / 4
    assert interval[0] <= value <= interval[1]
    assert per_capita(returns, np.zeros(4, dtype=bool)) == (None, None)


def test_a_background_agents_actions_never_enter_the_ppo_batch(tmp_path):
    """Random background agents: their actions are the random source's (replayed here from
    the stored masks and the slot's seed) and none of their transitions is in the batch."""
    from townlet.policy.trainer import Trainer

    config = typed(
        load_config(
            [
                "ppo=fast",
                "ppo.num_envs=4",
                "train.anneal=[]",
                "train.total_ticks=64",
                "tracking=off",
                "recording=off",
                "train.progress=false",
                "population.background=[{agents:[bob,dave],source:random}]",
            ]
        )
    )
    trainer = Trainer(config, tmp_path)
    rollout = trainer.sources["rollout"]
    data = rollout.collect(progress=0.0)
    buffers, e, a = rollout.buffers, rollout.e, rollout.a
    background = ~focal_agents(config)
    valid = buffers.valid.view(-1, e, a)
    assert not valid[:, :, background].any() and valid[:, :, ~background].any()
    assert len(data.batch) == int(valid.sum())
    focal_actions = buffers.actions.view(-1, e, a)[:, :, ~background]
    assert torch.equal(data.batch.actions, focal_actions[valid[:, :, ~background]])
    generator = torch.Generator().manual_seed(config.seed + 7 + 104_729)
    masks = buffers.masks.view(-1, e, a, buffers.masks.shape[-1])
    for t in range(len(masks)):
        noise = torch.rand(masks[t].shape, generator=generator)
        expected = (noise * masks[t]).argmax(-1)
        assert torch.equal(
            buffers.actions.view(-1, e, a)[t][:, background], expected[:, background]
        )


@pytest.mark.slow
def test_training_beside_scripted_coworkers_is_deterministic_and_splits_returns(tmp_path):
    from townlet.policy.train import train

    overrides = [
        "scenario=town",
        "ppo=fast",
        "ppo.num_envs=4",
        "ppo.rollout_ticks=120",
        "train.anneal=[]",
        "train.total_ticks=480",
        "train.eval_episodes=2",
        "tracking=off",
        "recording=periodic",
        "recording.periodic=1",
        "train.progress=false",
        COWORKERS,
    ]

    def run(name: str) -> tuple[dict, list[dict]]:
        train(load_config(overrides), tmp_path / name)
        weights = torch.load(tmp_path / name / "checkpoints" / "latest.pt", weights_only=False)
        lines = (tmp_path / name / "telemetry" / "ppo.jsonl").read_text().splitlines()
        drop = ("epoch_duration_sec", "steps_per_sec", "rollout_sec", "update_sec")
        records = [{k: v for k, v in json.loads(x).items() if k not in drop} for x in lines]
        return weights["model"], records

    first, first_records = run("a")
    again, again_records = run("b")
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert first_records == again_records
    finished = [r for r in first_records if "episodic_return" in r]
    assert finished and all("episodic_return_background" in r for r in finished)
    evaluation = json.loads((tmp_path / "a" / "evaluation.json").read_text())
    # two focal agents a day are measured, beside the scripted coworkers
    assert evaluation["policy_deterministic"]["agent_episodes"] == 2 * 2
    assert evaluation["population"]["background"][0]["agents"] == ["bob", "dave"]
    # recordings name each agent's source, and the viewer's and the video's words carry it
    from townlet.serve.catalog import Catalog
    from townlet.video.render import FrameRenderer

    frames = Catalog.for_run(tmp_path / "a").frames(0)
    assert frames.episode.header["agent_sources"] == ["focal", "scripted", "focal", "scripted"]
    agents = frames.message(5)["grid"]["agents"]
    assert [agent["source"] for agent in agents] == ["focal", "scripted", "focal", "scripted"]
    renderer = FrameRenderer(frames.episode, (640, 360))
    assert renderer._situation(5, 1).startswith("background: scripted")


def test_evaluation_under_a_population_measures_the_focal_agents_only():
    town = typed(load_config([]))
    mixed = typed(load_config([COWORKERS]))
    everyone = scripted_report(town, 4, seed=3)
    focal = scripted_report(mixed, 4, seed=3)
    assert everyone["agent_episodes"] == 4 * 4 and focal["agent_episodes"] == 4 * 2
    # the scripted routine in every slot plays the same day: alice's and carol's share
    assert focal["return_mean"] != everyone["return_mean"]
    beside = random_report(mixed, 4, seed=3)
    alone = random_report(
        typed(load_config(["population.background=[{agents:[bob,dave],source:random}]"])), 4, seed=3
    )
    assert beside["agent_episodes"] == alone["agent_episodes"] == 8
    assert beside["return_mean"] != alone["return_mean"]  # the coworkers' routine matters


class Planted:
    """Unpickling this runs code: a loader that unpickles would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_background_checkpoint_is_loaded_with_the_safe_loader(tmp_path):
    marker = tmp_path / "ran"
    hostile = tmp_path / "partner.pt"
    hostile.write_bytes(pickle.dumps({"model": Planted(str(marker))}))
    config = typed(
        load_config(
            [f"population.background=[{{agents:[bob],source:checkpoint,checkpoint:'{hostile}'}}]"]
        )
    )
    world = World(config.world, config.scenario, num_envs=1, seed=0)
    with pytest.raises(CheckpointError):
        Background(world, config, seed=0)
    assert not marker.exists()
    assert source_names(config)[1] == "checkpoint:partner.pt"


def test_a_frozen_partner_checkpoint_drives_its_agent(tmp_path):
    from townlet.policy.train import train

    run = tmp_path / "partner"
    train(
        load_config(
            [
                "ppo=fast",
                "ppo.num_envs=2",
                "train.anneal=[]",
                "train.total_ticks=32",
                "train.eval_episodes=1",
                "tracking=off",
                "recording=off",
                "train.progress=false",
            ]
        ),
        run,
    )
    partner = run / "checkpoints" / "latest.pt"
    config = typed(
        load_config(
            [
                f"population.background=[{{agents:[bob,dave],source:checkpoint,checkpoint:'{partner}'}}]"
            ]
        )
    )
    report = policy_report(config, _net(partner, config), 2, seed=1, det=True)
    assert report["agent_episodes"] == 2 * 2
    # the report across held-out populations: every mode beside every background
    from townlet.cli import main

    out = tmp_path / "populations"
    args = ["populations", str(partner), "--partner", str(partner), "--episodes", "2"]
    store = f"sqlite:///{tmp_path / 'mlruns.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOWNLET_TRACKING_URI", store)
        assert main([*args, "--output-dir", str(out), "--mlflow"]) == 0
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store)
    (logged,) = client.search_runs([client.get_experiment_by_name("populations").experiment_id])
    assert "populations/visitor/scripted/focal_return" in logged.data.metrics
    assert logged.data.tags["scenario"] == "town"
    written = json.loads((out / "populations.json").read_text())
    populations = written["runs"][0]["populations"]
    rows = [(r["mode"], r["partner"]) for r in populations]
    assert rows[0] == ("all focal", "-") and len(rows) == 1 + 3 * 3
    assert {m for m, _ in rows[1:]} == {"resident", "visitor", "half"}
    assert {p for _, p in rows[1:]} == {"scripted", "random", "partner/latest"}
    assert [(r["mode"], r["partner"], r["n"]) for r in written["summary"]] == [
        (m, p, 1) for m, p in rows
    ]
    visitor = next(r for r in populations if r["mode"] == "visitor")
    assert list(visitor["sources"].values()) == ["focal", "scripted", "scripted", "scripted"]
    assert (out / "populations.png").stat().st_size > 10_000
    assert main(["populations", str(run), "--partner", str(tmp_path / "nowhere.pt")]) == 2
    assert main(["populations", "scenario=town"]) == 2


def test_the_summary_pools_other_runs_and_gives_an_interval_over_them():
    from townlet.policy.population_modes import summarise

    def row(mode, partner, value, is_run=False):
        group = {
            "agents": 1,
            "on_time_rate": 1.0,
            "late_help_received": 1,
            "late_help_given": 0,
            "faints": 0,
        }
        chats = {"ok": 1, "failed": 0}
        return {
            "mode": mode,
            "partner": partner,
            "partner_is_run": is_run,
            "focal_per_capita_return": value,
            "focal_interval": [value, value],
            "focal_normalised": value / 4,
            "background_per_capita_return": 1.0,
            "efficiency": 4.0,
            "equality": 0.9,
            "focal": group,
            "background": group,
            "chats": {"focal_to_background": chats, "background_to_focal": chats},
        }

    reports = [
        {"populations": [row("visitor", "scripted", 2.0), row("visitor", "b/selected", 1.0, True)]},
        {"populations": [row("visitor", "scripted", 4.0), row("visitor", "a/selected", 3.0, True)]},
    ]
    summary = {(r["mode"], r["partner"]): r for r in summarise(reports)}
    assert set(summary) == {("visitor", "scripted"), ("visitor", "other run")}
    other = summary[("visitor", "other run")]
    assert other["n"] == 2 and other["focal_per_capita_return"] == 2.0
    assert other["focal_interval"][0] >= 1.0 and other["focal_interval"][1] <= 3.0
    assert (
        other["focal"]["late_help_received"] == 2
        and other["chats"]["focal_to_background"]["ok"] == 2
    )
    assert summary[("visitor", "scripted")]["focal_normalised"] == 0.75


def _net(path, config):
    from townlet.policy.checkpoint import load_policy

    world = World(config.world, config.scenario, num_envs=1, seed=0)
    return load_policy(path, world)[0]


def test_in_shift_partners_the_partner_decides_the_focal_clerks_morning():
    """Mia (focal, her routine) cannot be on time; the scripted Ned covers for her, a random
    Ned rarely reaches the desk: she is helped every morning beside one and never beside the
    other, and her return shows it."""

    def mia_beside(source: str) -> dict:
        background = f"population.background=[{{agents:[ned],source:{source}}}]"
        config = typed(load_config(["scenario=shift_partners", background]))
        return scripted_report(config, 8, seed=1005)

    scripted, random = mia_beside("scripted"), mia_beside("random")
    assert scripted["agent_episodes"] == random["agent_episodes"] == 8
    assert scripted["behaviour"]["late_rate"] == random["behaviour"]["late_rate"] == 1.0
    assert scripted["behaviour"]["late_help_events"] == 8
    assert random["behaviour"]["late_help_events"] == 0
    assert scripted["return_mean"] > random["return_mean"] + 0.1


def test_a_capture_beside_a_background_writes_the_focal_agents_and_names_the_population(
    tmp_path,
):
    from townlet.capture import capture

    random = "population.background=[{agents:[bob,dave],source:random}]"
    config = load_config([random, "capture.ticks=30", "capture.record=true"])
    result = capture(config, tmp_path / "capture")
    assert [s.agent_id for s in result.samples] == ["alice", "carol"]
    manifest = json.loads((tmp_path / "capture" / "rollout_sample_manifest.json").read_text())
    assert [row["agent_id"] for row in manifest["samples"]] == ["alice", "carol"]
    assert manifest["population"]["background"][0]["source"] == "random"
    from townlet.serve.catalog import Catalog

    header = Catalog.for_run(tmp_path / "capture").frames(0).episode.header
    assert header["agent_sources"] == ["focal", "random", "focal", "random"]
    # bob moved at random, not by his script (which walks to the stove first)
    scripted = capture(load_config(["capture.ticks=30"]), tmp_path / "plain")
    bob = result.world.layout.agent_ids.index("bob")
    assert not torch.equal(result.trace.actions[:, bob], scripted.trace.actions[:, bob])
    with pytest.raises(ConfigError, match="capture.agent: bob is a background agent"):
        capture(load_config([random, "capture.agent=bob"]), tmp_path / "bob")
