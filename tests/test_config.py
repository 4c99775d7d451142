"""Configuration cannot lie: unknown keys and wrong types fail naming the key."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_world
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from townlet.scenarios import load_config
from townlet.scenarios.build import CONF_DIR
from townlet.world import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def error_text(excinfo) -> str:
    error, parts = excinfo.value, []
    while error is not None:
        parts.append(str(error))
        error = error.__cause__
    return "\n".join(parts)


def test_default_config_composes_with_every_group():
    cfg = load_config()
    for group in ("world", "scenario", "ppo", "recording", "curriculum", "tracking"):
        assert group in cfg
    assert cfg.scenario.name == "town"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("world.grid_sizee=3", "grid_sizee"),
        ("world.meters.energy.decayy=0.1", "decayy"),
        ("scenario.tiks=3", "tiks"),
        ("ppo.learning_rat=0.1", "learning_rat"),
        ("sed=3", "sed"),
    ],
)
def test_a_misspelt_override_fails_naming_the_key(override, key):
    with pytest.raises(ConfigCompositionException) as excinfo:
        load_config([override])
    assert key in error_text(excinfo)


def test_a_wrong_type_fails_naming_the_key():
    with pytest.raises(ConfigCompositionException) as excinfo:
        load_config(["world.ticks_per_day=abc"])
    assert "ticks_per_day" in error_text(excinfo)


def test_a_misspelt_key_in_a_yaml_file_fails_naming_it(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    world = (conf / "world" / "default.yaml").read_text()
    (conf / "world" / "typo.yaml").write_text(world.replace("observation:", "observaton:"))
    with pytest.raises((ConfigCompositionException, ConfigKeyError)) as excinfo:
        load_config(["world=typo"], config_dir=conf)
    assert "observaton" in error_text(excinfo)
    scenario = (conf / "scenario" / "town.yaml").read_text()
    (conf / "scenario" / "typo.yaml").write_text(scenario.replace("start_hour:", "start_houre:"))
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ValidationError)) as excinfo:
        load_config(["scenario=typo"], config_dir=conf)
    assert "start_houre" in error_text(excinfo)


@pytest.mark.parametrize(
    ("scenario", "world", "fragments"),
    [
        (
            {"agents": [{"id": "ann", "pos": [1, 0]}], "walls": [[1, 0]]},
            None,
            ["scenario 'test'", "agent 'ann'", "pos", "wall"],
        ),
        ({"agents": [{"id": "ann", "pos": [9, 0]}]}, None, ["agent 'ann'", "outside"]),
        (
            {
                "agents": [{"id": "ann", "pos": [0, 0]}],
                "affordances": [{"name": "tub", "type": "Bathtub", "pos": [1, 0]}],
            },
            None,
            ["'tub'", "unknown affordance type 'Bathtub'"],
        ),
        (
            {"agents": [{"id": "ann", "pos": [0, 0], "meters": {"hapiness": 0.5}}]},
            None,
            ["agent 'ann'", "unknown meter 'hapiness'"],
        ),
        (
            {"agents": [{"id": "ann", "pos": [0, 0], "job": "pilot"}]},
            None,
            ["agent 'ann'", "unknown job 'pilot'"],
        ),
        (
            {"agents": [{"id": "ann", "pos": [0, 0]}]},
            {"affordances": {"Bed": {"effects": {"energi": 0.5}}}},
            ["world.affordances.Bed.effects", "unknown meter 'energi'"],
        ),
    ],
)
def test_semantic_errors_name_scenario_agent_and_key(scenario, world, fragments):
    with pytest.raises(ConfigError) as excinfo:
        make_world({"width": 3, "height": 2, **scenario}, world)
    for fragment in fragments:
        assert fragment in str(excinfo.value)


def run_train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "experiments/train.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_train_prints_the_composed_config_and_lists_groups():
    job = run_train("--cfg", "job")
    assert job.returncode == 0, job.stderr
    assert "ticks_per_day: 240" in job.stdout and "name: town" in job.stdout
    helped = run_train("--help")
    assert helped.returncode == 0
    for group in ("scenario", "world", "ppo", "recording", "curriculum", "tracking"):
        assert f"{group}:" in helped.stdout
    # the groups and the most used options, not hundreds of lines of composed config
    assert len(helped.stdout.splitlines()) < 60, helped.stdout
    for option in ("experiment=smoke", "train.resume=true", "--cfg job"):
        assert option in helped.stdout


@pytest.mark.slow
def test_train_refuses_an_unknown_key_before_running():
    bad = run_train("world.grid_size=9")
    assert bad.returncode != 0
    assert "grid_size" in bad.stderr


def test_a_training_job_validates_its_config_once_before_hydra_and_once_in_the_job(monkeypatch):
    """The preflight composed and validated twice, and the training job twice more (the
    entry point, then `train`): four checks of one config per job."""
    import townlet.config.validate as validation
    from townlet.scenarios.lint import check_command_line

    calls = []
    real = validation.check_consistency
    monkeypatch.setattr(validation, "check_consistency", lambda c: calls.append(1) or real(c))
    assert check_command_line(["experiment=smoke", "tracking=off"]) == []
    assert len(calls) == 1
    from townlet.policy.train import train

    config = validation.validate(load_config(["experiment=smoke"], check=False))
    calls.clear()
    with pytest.raises(ZeroDivisionError):  # stop before any work: only the checks matter
        monkeypatch.setattr("townlet.policy.train.Trainer", lambda *a, **k: 1 / 0)
        train(config, Path("unused"))
    assert calls == [], "a checked config is not checked again"


def test_a_scenario_describes_a_town_and_a_recipe_says_how_to_learn_it():
    """The town's recipe lived in conf/scenario/town.yaml, so choosing a scenario changed the
    algorithm and experiment=smoke had to undo the scenario's keys; now it is a group."""
    from townlet.scenarios.build import typed

    def recipe(*overrides):
        config = typed(load_config(list(overrides)))
        return [(s.mode.value, s.epochs) for s in config.train.anneal], config.train.select_every

    cloned = ([("bc", 60), ("ppo", 160)], 20)
    assert recipe() == cloned  # make train: town, with the recipe it names
    assert recipe("scenario=town_week") == cloned
    assert recipe("recipe=ppo") == ([], 0)
    assert recipe("scenario=kitchen_breakfast") == ([], 0)
    assert recipe("scenario=kitchen_breakfast", "recipe=clone_then_ppo") == cloned
    assert recipe("experiment=smoke") == ([], 0)
    scenario_file = (CONF_DIR / "scenario" / "town.yaml").read_text()
    assert "anneal" not in scenario_file and "select_every" not in scenario_file


def test_every_experiment_composes_and_the_week_keeps_its_measured_recipe():
    """An experiment file is read only when someone runs it: a misspelt key there would first
    fail at the start of a 15-minute job. The week's recipe is the one its figures were
    measured with (docs/guides/training.md, "A week")."""
    from townlet.scenarios.build import typed

    experiments = sorted((CONF_DIR / "experiment").glob("*.yaml"))
    assert len(experiments) >= 6
    for path in experiments:
        typed(load_config([f"experiment={path.stem}"]))
    week = typed(load_config(["experiment=week"]))
    assert week.scenario.name == "town_week"
    assert (week.ppo.hidden_size, week.train.bc.ppo_anchor) == (128, 0.05)
    assert (week.train.select_every, week.train.select_episodes) == (10, 16)
