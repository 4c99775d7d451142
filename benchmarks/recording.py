"""Recording figures as JSON lines: bytes per step, load + decode time and verification speed
(`townlet recordings verify`: re-simulate and compare each tick's state hash) of single-agent
episodes of 100 / 500 / 2000 steps, and training throughput with every episode recorded (with
events and state hashes) against recording off.

Episodes are real: one agent in the town acting from a freshly initialised policy network
(its action probabilities and values vary every step, as a trained one's do); fainting is off
so every episode has exactly the stated length.
Run: python benchmarks/recording.py
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from townlet.policy.network import ActorCritic
from townlet.policy.train import train
from townlet.recording import RecordingIndex, read_episode
from townlet.recording.frame import frame_of, outcome_of
from townlet.recording.recorder import EpisodeRecorder
from townlet.recording.verify import verify_episode
from townlet.scenarios import load_config
from townlet.scenarios.build import typed
from townlet.world import World
from townlet.world.constants import NUM_ACTIONS


def record_episode(run: Path, steps: int) -> Path:
    # No fainting, so every episode runs its full length; meters still decay and move.
    cfg = typed(
        load_config(
            [
                f"scenario.ticks={steps}",
                "recording=periodic",
                "recording.periodic=1",
                "world.meters.energy.critical=false",
                "world.meters.satiation.critical=false",
            ]
        )
    )
    cfg.scenario.agents = cfg.scenario.agents[:1]
    world = World(cfg.world, cfg.scenario, num_envs=1, seed=0)
    net = ActorCritic(world.layout.window, len(world.names.features), NUM_ACTIONS)
    recorder = EpisodeRecorder(
        cfg.recording, run, world, run_id="bench", seed=0, config_hash="bench"
    )
    generator = torch.Generator().manual_seed(0)
    obs = world.observe()
    for _ in range(steps):
        with torch.no_grad():
            action, _, _, value, logits = net.get_action_and_value(
                obs.map_codes[0], obs.features[0], obs.action_mask[0], generator=generator
            )
        before = frame_of(world, obs.features[0], action, logits, value)  # with the state hash
        recorder.before_step()
        result = world.step(action.view(1, 1))
        recorder.tap(**before, **outcome_of(result))
        obs = result.obs
        if bool(result.env_done[0]):
            break
    recorder.end_episode(0, 1, result.episode_return[0])
    recorder.close()
    return run / "recordings" / "episode_000000.msgpack.lz4"


def train_rate(overrides: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(
            ["train.total_ticks=768", "train.eval_episodes=1", "train.progress=false", *overrides]
        )
        train(cfg, Path(tmp))
        records = [
            json.loads(x) for x in (Path(tmp) / "telemetry" / "ppo.jsonl").read_text().splitlines()
        ][2:]
        return sum(r["steps_per_sec"] * r["epoch_duration_sec"] for r in records) / sum(
            r["epoch_duration_sec"] for r in records
        )


def main() -> None:
    for steps in (100, 500, 2000):
        with tempfile.TemporaryDirectory() as tmp:
            path = record_episode(Path(tmp), steps)
            size = path.stat().st_size
            loads = []
            for _ in range(50):
                start = time.perf_counter()
                episode = read_episode(path)
                loads.append(time.perf_counter() - start)
            assert episode.steps == steps
            row = RecordingIndex.for_run(Path(tmp), create=False).get(0)
            start = time.perf_counter()
            verified = verify_episode(episode)
            verify_seconds = time.perf_counter() - start
            assert verified.verified, verified.line()
        conditions = {
            "steps": steps,
            "agents": 1,
            "format_version": 2,
            "uncompressed_bytes": row["file_size_bytes"],
            "compressed_bytes": size,
        }
        print(
            json.dumps(
                {
                    "name": "recording_bytes_per_step",
                    "value": round(size / steps, 2),
                    "unit": "bytes/step",
                    **conditions,
                }
            ),
            flush=True,
        )
        print(
            json.dumps(
                {
                    "name": "recording_verify_ticks_per_sec",
                    "value": round(steps / verify_seconds, 1),
                    "unit": "ticks/s (re-simulate and compare every state hash)",
                    **conditions,
                }
            ),
            flush=True,
        )
        print(
            json.dumps(
                {
                    "name": "recording_load_decode_ms",
                    "value": round(statistics.median(loads) * 1e3, 3),
                    "unit": "ms (median of 50)",
                    **conditions,
                }
            ),
            flush=True,
        )
    # a kitchen_breakfast episode ends every 30 ticks: recording every episode is the worst case
    # Runs alternate (off, on, off, on, ...) and medians are compared: this machine is noisy.
    base = ["scenario=kitchen_breakfast", "ppo.num_envs=128"]
    offs, ons = [], []
    for _ in range(3):
        offs.append(train_rate(base))
        ons.append(train_rate([*base, "recording=periodic", "recording.periodic=1"]))
    off, on = statistics.median(offs), statistics.median(ons)
    print(
        json.dumps(
            {
                "name": "training_throughput_ratio_recording_every_episode",
                "value": round(on / off, 3),
                "unit": "ratio",
                "with_recording": round(on),
                "without": round(off),
                "scenario": "kitchen_breakfast",
                "envs": 128,
                "runs_each": 3,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
