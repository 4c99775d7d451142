"""Shared helpers: compose the real config and build small worlds from scenario dicts."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from townlet.config.schema import ScenarioConfig
from townlet.scenarios import build_world, load_config
from townlet.world import Action, World

A = Action


@pytest.fixture(scope="session", autouse=True)
def tracking_store(tmp_path_factory):
    """Every tracked job in the tests logs to a temporary MLflow store, never the project's."""
    import os

    store = tmp_path_factory.mktemp("mlflow") / "mlruns.db"
    os.environ["TOWNLET_TRACKING_URI"] = f"sqlite:///{store}"
    yield store


@pytest.fixture(scope="session")
def base_cfg():
    """The project's composed default config (real Hydra composition)."""
    return load_config()


def make_world(
    scenario: dict[str, Any],
    world: dict[str, Any] | None = None,
    num_envs: int = 1,
    seed: int = 0,
    auto_reset: bool = False,
) -> World:
    """A world from the default world config plus a scenario, merged through the schemas."""
    cfg = load_config()
    cfg.scenario = OmegaConf.merge(
        OmegaConf.structured(ScenarioConfig), {"name": "test", **scenario}
    )
    if world:
        with open_dict(cfg):  # composition allows new dict entries (jobs, meters); so do we
            cfg.world = OmegaConf.merge(cfg.world, world)
    return build_world(cfg, num_envs=num_envs, auto_reset=auto_reset, seed=seed)


def act(world: World, *actions: int | Action):
    """Step a single-env world with one action per agent."""
    return world.step(torch.tensor([[int(a) for a in actions]], dtype=torch.int64))


def run(world: World, plan: list[tuple], collect: list | None = None):
    """Step through a list of per-tick action tuples, returning the last result."""
    result = None
    for actions in plan:
        result = act(world, *actions)
        if collect is not None:
            collect.append(result)
    return result


def xy(world: World, agent: int = 0) -> tuple[int, int]:
    x, y = world.positions()[0, agent].tolist()
    return int(x), int(y)


def train_killed_and_resumed(make_args, root, kill_after: int, total: int):
    """Train a reference run, then the same run SIGKILLed after `kill_after` telemetry lines
    (of `total`) and resumed with train.resume=true; return (reference dir, resumed dir).

    `make_args(run_dir, *extra)` gives the training command line."""
    import signal
    import subprocess
    import time
    from pathlib import Path

    cwd = Path(__file__).resolve().parents[1]
    reference = root / "reference"
    done = subprocess.run(
        make_args(reference), cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    killed = root / "killed"
    process = subprocess.Popen(
        make_args(killed), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    log = killed / "telemetry" / "ppo.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (
        not log.exists() or len(log.read_text().splitlines()) < kill_after
    ):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(log.read_text().splitlines()) < total, "the run must be killed part-way"
    resumed = subprocess.run(
        make_args(killed, "train.resume=true"), cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    return reference, killed
