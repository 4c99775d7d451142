"""Shared helpers: compose the real config, build small worlds from scenario dicts, play
synthetic episodes into a recorder, drive a real server, and run the telemetry tools."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import settings
from omegaconf import OmegaConf, open_dict

from townlet.config.schema import RecordingConfig, ScenarioConfig
from townlet.recording.recorder import EpisodeRecorder
from townlet.scenarios import build_world, load_config
from townlet.serve.catalog import Catalog
from townlet.serve.server import ServeOptions, TownletServer
from townlet.world import Action, World

A = Action
ROOT = Path(__file__).resolve().parents[1]

settings.register_profile(
    "repeatable", max_examples=250, derandomize=True, deadline=None, database=None
)
settings.register_profile("explore", max_examples=5000, deadline=None, database=None)
settings.load_profile("repeatable")
"""CI runs the same examples every time (a red run is a real, reproducible finding, never a
draw); `pytest --hypothesis-profile=explore` searches afresh with many more examples."""

SAMPLES = ROOT / "docs" / "samples"


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


def interruptible() -> None:
    """`preexec_fn` for a child a test will Ctrl-C: SIGINT delivered as to a terminal's
    foreground job. A runner started in the background (`cmd &` from a script) ignores SIGINT,
    its children inherit that, and the interrupt under test would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


# ------------------------------------------------------------------ recordings
FIXTURES = ROOT / "tests" / "fixtures" / "hamlet-v1"


def tiny_world():
    return make_world(
        {
            "width": 4,
            "height": 2,
            "ticks": 50,
            "affordances": [{"name": "bed", "type": "Bed", "pos": [0, 0]}],
            "agents": [{"id": "a", "pos": [1, 0]}, {"id": "b", "pos": [2, 0]}],
        }
    )


def recorder_for(tmp_path, **options) -> EpisodeRecorder:
    return EpisodeRecorder(
        RecordingConfig(enabled=True, **options),
        tmp_path,
        tiny_world(),
        run_id="test",
        seed=0,
        config_hash="abc",
    )


def play(recorder: EpisodeRecorder, episode_id: int, reward: float, stage: int = 1, steps: int = 5):
    """Tap a synthetic episode whose agents each earn `reward` in total, then end it."""
    for t in range(steps):
        recorder.tap(
            positions=torch.tensor([[t % 4, 0], [1, 1]]),
            meters=torch.full((2, 5), 0.5 - 0.01 * t),
            actions=torch.tensor([t % 6, 0]),
            rewards=torch.full((2,), reward / steps),
            dones=torch.tensor([t == steps - 1] * 2),
            interaction_progress=torch.zeros(2),
            time_of_day=torch.tensor(60 + t),
            queued=torch.tensor([-1, -1]),
            using=torch.tensor([-1, -1]),
            action_probs=torch.full((2, 6), 1 / 6),
            values=torch.tensor([0.1 * t, 0.2]),
        )
    recorder.end_episode(episode_id, stage, torch.full((2,), reward))


# ------------------------------------------------------------------ the server
def serving(catalog: Catalog, live=None, **options):
    """Run `body(server)` against a started server on a free port (with a live factory when
    given), then stop it."""

    def decorator(body):
        async def main():
            server = TownletServer(catalog, ServeOptions(port=0, **options), live)
            await server.start()
            try:
                await body(server)
            finally:
                await server.stop()

        asyncio.run(main())

    return decorator


def url(server, token: str | None = None) -> str:
    return f"ws://127.0.0.1:{server.port}/ws" + (f"?token={token}" if token else "")


async def receive(ws, timeout: float = 10.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=timeout))


async def request(ws, message: dict | str) -> dict:
    await ws.send(message if isinstance(message, str) else json.dumps(message))
    return await receive(ws)


async def until(ws, kind: str, limit: int = 10_000) -> tuple[dict, int]:
    """The first message of `kind`, and how many others came before it."""
    for seen in range(limit):
        message = await receive(ws)
        if message["type"] == kind:
            return message, seen
    raise AssertionError(f"no {kind}")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A real training run directory: .hydra config, checkpoints and recordings."""
    run = tmp_path_factory.mktemp("trained")
    done = subprocess.run(
        [
            sys.executable,
            "experiments/train.py",
            "scenario=kitchen_breakfast",
            "ppo=fast",
            "ppo.num_envs=4",
            "train.total_ticks=64",
            "recording=periodic",
            "recording.periodic=1",
            "tracking=off",
            f"hydra.run.dir={run}",
        ],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return run


# ------------------------------------------------------------------ telemetry tools
def tool(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "townlet.telemetry", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sample(version: str = "1.1", **changes) -> dict:
    record = json.loads((SAMPLES / f"telemetry_v{version}.jsonl").read_text())
    record.update(changes)
    return record


def write_log(path: Path, records: list[dict], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path
