"""Server figures as JSON lines: time to ready, state updates per second to one client at
unlimited speed, 100 concurrent clients each playing a different recording at 50 steps/s
(delivered rate and lag per client), list_recordings latency over 100,000 indexed rows, and
fairness under load: with 3 live-inference sessions at full speed and a client spamming
`load_replay` without reading, or with 6 hostile clients (branch_live rebuilds, malformed and
out-of-range messages), another client's list_recordings round trip (p50/p99) and the rate its
replay holds. Everything runs on 127.0.0.1. Run: python benchmarks/serve.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from townlet.config.schema import RecordingConfig  # noqa: E402
from townlet.recording import RecordingIndex  # noqa: E402
from townlet.recording.recorder import EpisodeRecorder  # noqa: E402
from townlet.scenarios import build_world, load_config  # noqa: E402
from townlet.serve.catalog import Catalog  # noqa: E402
from townlet.serve.server import ServeOptions, TownletServer  # noqa: E402
from townlet.serve.spawn import serve_command  # noqa: E402
from townlet.util.net import free_port  # noqa: E402


def emit(name: str, value: float, unit: str, **conditions) -> None:
    print(
        json.dumps({"name": name, "value": round(value, 4), "unit": unit, **conditions}), flush=True
    )


def make_recordings(run: Path, episodes: int, steps: int) -> None:
    """`episodes` real town episodes (4 agents, random masked actions)."""
    cfg = load_config(
        [
            f"scenario.ticks={steps}",
            "world.meters.energy.critical=false",
            "world.meters.satiation.critical=false",
        ]
    )
    world = build_world(cfg)
    recorder = EpisodeRecorder(
        RecordingConfig(enabled=True, periodic=1, queue_size=256),
        run,
        world,
        run_id="bench",
        seed=0,
        config_hash="bench",
    )
    generator = torch.Generator().manual_seed(0)
    for episode in range(episodes):
        obs = world.reset(seed=episode)
        for _ in range(steps):
            mask = obs.action_mask
            action = (torch.rand(mask.shape, generator=generator) * mask).argmax(-1)
            state = world.state
            before = {
                "positions": world.layout.xy_of(state.pos[0]),
                "meters": state.meters[0],
                "actions": action[0],
                "interaction_progress": obs.features[0, :, -3],
                "time_of_day": world.time_of_day()[0],
                "queued": state.queued[0],
                "using": state.using[0],
                "action_probs": mask[0].float() / mask[0].sum(-1, keepdim=True),
                "values": torch.zeros(4),
            }
            result = world.step(action)
            recorder.tap(
                **before, rewards=result.reward[0], dones=result.terminated[0] | result.truncated[0]
            )
            obs = result.obs
        recorder.end_episode(episode, 1, result.episode_return[0])
    recorder.close()


async def time_to_ready(run: Path) -> float:
    port = free_port()
    start = time.perf_counter()
    process = subprocess.Popen(
        serve_command(run, port), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                    await ws.recv()
                    return time.perf_counter() - start
            except OSError:
                await asyncio.sleep(0.01)
    finally:
        process.terminate()
        process.wait()


async def one_client_rate(server: TownletServer, episode: int) -> float:
    """Updates per second delivered to one client that counts frames (it does not parse them:
    parsing is the client's cost, and a browser pays it in its own process)."""
    async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "load_replay", "episode_id": episode}))
        await ws.recv()
        await ws.recv()
        await ws.send(json.dumps({"command": "play"}))
        count, start = 0, time.perf_counter()
        while b'"replay_finished"' not in (await ws.recv(decode=False))[:40]:
            count += 1
        return count / (time.perf_counter() - start)


async def paced_client(port: int, episode: int, seconds: float) -> tuple[float, float]:
    async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "load_replay", "episode_id": episode}))
        await ws.recv()
        await ws.recv()
        await ws.send(json.dumps({"command": "play"}))
        start, count, steps = time.perf_counter(), 0, 0
        while time.perf_counter() - start < seconds:
            message = json.loads(await ws.recv())
            if message["type"] == "state_update":
                count += 1
                steps = message["step"]
        elapsed = time.perf_counter() - start
        expected = elapsed * 50.0
        return count / elapsed, max(0.0, (expected - steps) / 50.0)  # rate, seconds behind schedule


def train_tiny_run(root: Path) -> Path:
    """A real run directory with a checkpoint and every episode recorded (about 10 s)."""
    run = root / "trained"
    subprocess.run(
        [
            sys.executable,
            "experiments/train.py",
            "scenario=kitchen_breakfast",
            "ppo=fast",
            "ppo.num_envs=4",
            "train.total_ticks=320",
            "train.eval_episodes=1",
            "recording=periodic",
            "recording.periodic=1",
            "tracking=off",
            f"hydra.run.dir={run}",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return run


LOAD = """
import asyncio, json, sys
from websockets.asyncio.client import connect

async def live(address):
    async with connect(address) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "load_checkpoint", "checkpoint": "latest"}))
        await ws.send(json.dumps({"command": "set_speed", "speed": 1000}))
        async for _ in ws:
            pass

async def spam(address, episodes):
    ws = await connect(address, max_queue=1)
    await ws.recv()
    n = 0
    while True:
        await ws.send(json.dumps({"type": "load_replay", "episode_id": n % episodes}))
        n += 1

async def main(address, episodes):
    await asyncio.gather(*(live(address) for _ in range(3)), spam(address, episodes))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

HOSTILE = """
import asyncio, json, random, sys
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

BAD = ['{not json', json.dumps({"type": "list_recordings", "filters": {"order": {}}}),
       json.dumps({"type": "load_replay", "episode_id": 2**70}), "x" * 60000,
       json.dumps({"type": "load_checkpoint", "checkpoint": "../../etc/passwd"}), "y" * 2**20]

async def hostile(address, episodes, seed):
    rng = random.Random(seed)
    while True:  # a frame past the size limit closes the connection: come back
        try:
            async with connect(address, max_size=None) as ws:
                await ws.recv()
                while True:
                    if rng.random() < 0.5:  # a world rebuilt from a recording, a policy loaded
                        message = {"type": "branch_live", "episode_id": rng.randrange(episodes),
                                   "step": rng.randrange(0, 30), "checkpoint": "latest"}
                        await ws.send(json.dumps(message))
                    else:
                        await ws.send(rng.choice(BAD))
                    while json.loads(await ws.recv())["type"] == "state_update":
                        pass
        except ConnectionClosed:
            await asyncio.sleep(0.01)

async def main(address, episodes):
    await asyncio.gather(*(hostile(address, episodes, k) for k in range(6)))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def under_load(trained: Path, script: str = LOAD, label: str = "loaded") -> None:
    """The server, the load (LOAD: 3 live sessions at full speed and a client spamming
    load_replay without reading; HOSTILE: 6 clients sending branch_live rebuilds, malformed and
    out-of-range messages) and the measuring client each run in their own process, as browsers
    do."""
    port = free_port()
    address = f"ws://127.0.0.1:{port}/ws"
    server = subprocess.Popen(
        [sys.executable, "experiments/serve.py", f"run_dir={trained}", f"serve.port={port}"]
        + ["serve.step_delay=0.02"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    load = None
    try:
        while True:
            try:
                async with connect(address) as ws:
                    await ws.recv()
                    await ws.send(json.dumps({"type": "list_recordings"}))
                    episodes = len(json.loads(await ws.recv())["recordings"])
                break
            except OSError:
                await asyncio.sleep(0.05)
        load = subprocess.Popen([sys.executable, "-c", script, address, str(episodes)], cwd=ROOT)
        await asyncio.sleep(2.0)
        times, delivered, wall = await measure(address, episodes)
    finally:
        for process in (load, server):
            if process is not None:
                process.terminate()
                process.wait()
    times.sort()
    conditions = (
        {"live_sessions": 3, "live_speed": "full", "spamming_clients": 1}
        if script is LOAD
        else {"hostile_clients": 6, "sending": "branch_live, malformed, out of range"}
    )
    emit(f"serve_{label}_list_recordings_p50", times[len(times) // 2] * 1e3, "ms", **conditions)
    emit(
        f"serve_{label}_list_recordings_p99",
        times[min(len(times) - 1, int(len(times) * 0.99))] * 1e3,
        "ms",
        requests=len(times),
        target=50,
        **conditions,
    )
    emit(
        f"serve_{label}_replay_rate_fraction",
        delivered / wall / 50.0,
        "of requested",
        requested_rate=50,
        target=0.9,
        **conditions,
    )


async def measure(address: str, episodes: int) -> tuple[list[float], int, float]:
    """list_recordings round trips on one connection while another replays episodes at 50
    steps/s for 6 s: (round-trip times, state updates delivered, seconds)."""
    async with connect(address) as ws, connect(address) as viewer:
        await ws.recv()
        await viewer.recv()

        async def replay() -> tuple[int, float]:
            count, start, episode = 0, time.perf_counter(), 0
            while time.perf_counter() - start < 6.0:
                load = {"type": "load_replay", "episode_id": episode % episodes}
                await viewer.send(json.dumps(load))
                reply = json.loads(await viewer.recv())
                assert reply["type"] == "replay_loaded", reply
                await viewer.send(json.dumps({"command": "play"}))
                while (kind := json.loads(await viewer.recv())["type"]) != "replay_finished":
                    count += kind == "state_update"
                episode += 1
            return count, time.perf_counter() - start

        watching = asyncio.create_task(replay())
        times = []
        while not watching.done():
            start = time.perf_counter()
            await ws.send(json.dumps({"type": "list_recordings"}))
            reply = json.loads(await ws.recv())
            times.append(time.perf_counter() - start)
            assert reply["type"] == "recordings_list"
            await asyncio.sleep(0.02)
        delivered, wall = await watching
    return times, delivered, wall


async def main(only: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trained = train_tiny_run(Path(tmp))
        if only in (None, "loaded"):
            await under_load(trained)
        if only in (None, "hostile"):
            await under_load(trained, HOSTILE, "hostile")
        if only is not None:
            return
        run = Path(tmp) / "run"
        make_recordings(run, episodes=100, steps=300)
        emit(
            "serve_time_to_ready",
            await time_to_ready(run),
            "s",
            note="process start to first WebSocket reply",
        )
        server = TownletServer(Catalog.for_run(run), ServeOptions(port=0, step_delay=0.0))
        await server.start()
        rates = [await one_client_rate(server, episode) for episode in range(5)]
        emit(
            "serve_state_updates_per_sec_one_client",
            statistics.median(rates),
            "updates/s",
            agents=4,
            steps=300,
            speed="unlimited",
            episodes=5,
            target=15_000,
        )
        await server.stop()
        paced = TownletServer(
            Catalog.for_run(run), ServeOptions(port=0, step_delay=0.02)
        )  # 50 steps/s
        await paced.start()
        results = await asyncio.gather(*(paced_client(paced.port, i, 4.0) for i in range(100)))
        await paced.stop()
        rates, lags = [r for r, _ in results], [lag for _, lag in results]
        emit(
            "serve_100_clients_delivered_rate_median",
            statistics.median(rates),
            "updates/s per client",
            clients=100,
            target_rate=50,
            worst=round(min(rates), 2),
        )
        emit(
            "serve_100_clients_lag_median",
            statistics.median(lags),
            "s behind schedule",
            clients=100,
            worst=round(max(lags), 3),
        )
        # list_recordings over an index of 100,000 rows
        big = Path(tmp) / "big"
        index = RecordingIndex.for_run(big)
        rows = [
            {
                "episode_id": i,
                "survival_steps": 300,
                "total_reward": (i % 997) / 100.0,
                "curriculum_stage": 1 + i % 3,
                "recording_reason": ("periodic_100", "top_10.0pct")[i % 2],
                "timestamp": 0.0,
                "file_path": f"episode_{i:06d}.msgpack.lz4",
                "file_size_bytes": 1,
                "compressed_size_bytes": 1,
                "run_id": "bench",
                "scenario": "town",
                "recording_reasons": json.dumps([("periodic_100", "top_10.0pct")[i % 2]]),
                "format_version": 2,
            }
            for i in range(100_000)
        ]
        index.insert(rows)
        index.close()
        server = TownletServer(Catalog.for_run(big), ServeOptions(port=0))
        await server.start()
        async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            await ws.recv()
            for label, filters in (
                ("default", {}),
                ("stage+reason+reward", {"stage": 2, "reason": "top_10.0pct", "min_reward": 5.0}),
            ):
                times = []
                for _ in range(30):
                    start = time.perf_counter()
                    await ws.send(json.dumps({"type": "list_recordings", "filters": filters}))
                    reply = json.loads(await ws.recv())
                    times.append(time.perf_counter() - start)
                assert len(reply["recordings"]) == 100
                emit(
                    "serve_list_recordings_latency_median",
                    statistics.median(times) * 1e3,
                    "ms",
                    rows=100_000,
                    limit=100,
                    filters=label,
                )
        await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=("loaded", "hostile"), help="measure one fairness case and stop"
    )
    asyncio.run(main(parser.parse_args().only))
