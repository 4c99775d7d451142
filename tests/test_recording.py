"""Recording: rules, format, index, bad input, a writer killed mid-write, and version-1 files."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import lz4.frame
import msgpack
import numpy as np
import pytest
from conftest import FIXTURES, ROOT, play, recorder_for

from townlet.config.schema import RecordingConfig
from townlet.recording import (
    Episode,
    RecordingError,
    RecordingIndex,
    decode_episode,
    encode_episode,
    reindex,
)
from townlet.recording.policies import RecordingPolicy


def reasons_by_episode(run: Path) -> dict[int, list[str]]:
    index = RecordingIndex.for_run(run, create=False)
    return {r["episode_id"]: r["recording_reasons"] for r in index.list(limit=None)}


# ------------------------------------------------------------------ rules
def test_periodic_and_performance_reasons_for_a_scripted_reward_sequence():
    policy = RecordingPolicy(
        RecordingConfig(
            enabled=True,
            periodic=3,
            top_percent=20.0,
            bottom_percent=20.0,
            performance_window=5,
            performance_min_history=5,
        )
    )
    rewards = [1.0, 2.0, 3.0, 4.0, 5.0, 9.0, 0.5, 3.0, 5.5, 1.0]
    got = [policy.reasons(i, r, 1) for i, r in enumerate(rewards)]
    assert got == [
        ["periodic_3"],
        [],
        [],
        ["periodic_3"],
        [],
        ["top_20.0pct"],  # 9.0 against window [1..5]
        ["periodic_3", "bottom_20.0pct"],  # 0.5 against [2, 3, 4, 5, 9]
        [],
        [],
        ["periodic_3", "bottom_20.0pct"],
    ]


def test_curriculum_first_n_and_pre_transition_ring_buffer(tmp_path):
    recorder = recorder_for(tmp_path, stage_first=2, stage_pre_transition=3, periodic=4)
    for episode in range(6):
        play(recorder, episode, reward=1.0, stage=1)
    recorder.stage_changed(2)
    for episode in range(6, 9):
        play(recorder, episode, reward=1.0, stage=2)
    recorder.close()
    assert reasons_by_episode(tmp_path) == {
        0: ["periodic_4", "stage_1_first_2"],
        1: ["stage_1_first_2"],
        3: ["stage_2_pre_transition"],
        4: ["periodic_4", "stage_2_pre_transition"],
        5: ["stage_2_pre_transition"],
        6: ["stage_2_first_2"],
        7: ["stage_2_first_2"],
        8: ["periodic_4"],
    }
    rows = {
        r["episode_id"]: r for r in RecordingIndex.for_run(tmp_path, create=False).list(limit=None)
    }
    assert rows[4]["recording_reason"] == "periodic_4", "the primary reason is the first matched"
    assert recorder.stats() == {"recording_episodes_written": 8, "recording_episodes_dropped": 0}


def test_a_full_queue_drops_whole_episodes_and_counts_them(tmp_path, monkeypatch):
    recorder = recorder_for(tmp_path, periodic=1, queue_size=1, block_seconds=0.0)
    original = recorder.index.write

    def slow(episode):
        time.sleep(0.3)
        return original(episode)

    monkeypatch.setattr(recorder.index, "write", slow)
    for episode in range(6):
        play(recorder, episode, reward=1.0)
    recorder.close()
    written, dropped = recorder.written, recorder.dropped
    assert dropped > 0 and written + dropped == 6
    for row in RecordingIndex.for_run(tmp_path, create=False).list(limit=None):
        assert RecordingIndex.for_run(tmp_path, create=False).load(row["episode_id"]).steps == 5


def test_an_already_recorded_episode_is_skipped_never_overwritten(tmp_path):
    first = recorder_for(tmp_path, periodic=1)
    play(first, 0, reward=1.0)
    first.close()
    path = tmp_path / "recordings" / "episode_000000.msgpack.lz4"
    before = path.read_bytes()
    again = recorder_for(tmp_path, periodic=1)
    play(again, 0, reward=5.0)
    play(again, 1, reward=5.0)
    again.close()
    assert path.read_bytes() == before and again.skipped == 1 and again.written == 1


# ------------------------------------------------------------------ format
def test_version_two_round_trip_and_size(tmp_path):
    recorder = recorder_for(tmp_path, periodic=1)
    play(recorder, 0, reward=2.0, steps=40)
    recorder.close()
    index = RecordingIndex.for_run(tmp_path, create=False)
    episode = index.load(0)
    assert episode.header["format_version"] == 2 and episode.header["agent_ids"] == ["a", "b"]
    assert (
        episode.header["meter_names"][0] == "energy"
        and episode.header["action_names"][5] == "INTERACT"
    )
    assert episode.header["grid"] == {"width": 4, "height": 2, "walls": []}
    assert episode.header["affordances"] == [{"name": "bed", "type": "Bed", "x": 0, "y": 0}]
    cols = episode.columns
    assert cols["actions"][:, 0].tolist() == [t % 6 for t in range(40)]
    np.testing.assert_allclose(
        cols["meters"][:, 0, 0], [0.5 - 0.01 * t for t in range(40)], atol=1 / 65535
    )
    np.testing.assert_allclose(cols["rewards"].sum(0), [2.0, 2.0], rtol=1e-6)
    assert cols["time_of_day"].tolist() == list(range(60, 100))
    np.testing.assert_allclose(cols["action_probs"], 1 / 6, atol=1 / 255)
    meta = episode.metadata
    assert (meta["episode_id"], meta["survival_steps"], meta["total_reward"]) == (0, 40, 2.0)
    row = index.get(0)
    assert (
        row["compressed_size_bytes"] == (tmp_path / "recordings" / row["file_path"]).stat().st_size
    )
    assert row["file_size_bytes"] > row["compressed_size_bytes"]


def test_version_one_fixtures_load_with_their_names():
    index = RecordingIndex(FIXTURES / "metrics.db", FIXTURES / "recordings", create=False)
    rows = index.list()
    assert [r["survival_steps"] for r in rows] == [500, 274, 500, 92, 234, 208]
    for row in rows:
        episode = index.load(row["episode_id"])
        assert episode.header["format_version"] == 1
        assert episode.steps == row["survival_steps"]
        assert episode.columns["meters"].shape == (episode.steps, 1, 8)
        assert (
            episode.header["meter_names"][4] == "mood"
            and episode.header["action_names"][6] == "REST"
        )
        assert {a["name"] for a in episode.header["affordances"]} >= {"Bed", "Shower", "Job"}
        assert "q_values" in episode.columns
    assert [r["episode_id"] for r in index.list(reason="periodic", min_reward=3000)] == [0, 2]


def test_version_one_flat_affordance_layout_is_accepted():
    payload = {
        "version": 1,
        "metadata": {
            "episode_id": 9,
            "survival_steps": 2,
            "total_reward": 1.0,
            "curriculum_stage": 1,
            "timestamp": 0.0,
        },
        "steps": [
            {
                "step": i,
                "position": [i, 0],
                "meters": [0.5] * 8,
                "action": 5,
                "reward": 0.5,
                "done": i == 1,
                "q_values": None,
                "time_of_day": None,
                "interaction_progress": None,
            }
            for i in range(2)
        ],
        "affordances": {"Bed": [1, 2], "Shower": [3, 4]},
    }
    episode = decode_episode(lz4.frame.compress(msgpack.packb(payload)), "episode 9")
    assert episode.header["affordances"] == [
        {"name": "Bed", "type": "Bed", "x": 1, "y": 2},
        {"name": "Shower", "type": "Shower", "x": 3, "y": 4},
    ]
    assert episode.columns["positions"][:, 0].tolist() == [[0, 0], [1, 0]]


# ------------------------------------------------------------------ index and bad input
@pytest.fixture
def recorded(tmp_path):
    recorder = recorder_for(tmp_path, periodic=1, stage_first=1)
    for episode, (reward, stage) in enumerate([(1.0, 1), (5.0, 1), (3.0, 2), (-2.0, 2)]):
        play(recorder, episode, reward=reward, stage=stage)
    recorder.close()
    return tmp_path


def test_index_filters_and_schema(recorded):
    index = RecordingIndex.for_run(recorded, create=False)
    assert [r["episode_id"] for r in index.list(stage=2)] == [2, 3]
    assert [r["episode_id"] for r in index.list(reason="stage_2_first_1")] == [2]
    assert [r["episode_id"] for r in index.list(min_reward=2.0, max_reward=4.0)] == [2]
    assert [r["episode_id"] for r in index.list(limit=1)] == [0]
    db = sqlite3.connect(recorded / "recordings.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"idx_recordings_stage", "idx_recordings_reason", "idx_recordings_reward"} <= names
    listed = subprocess.run(
        [sys.executable, "-m", "townlet.cli", "recordings", "list", str(recorded), "--stage", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0 and len(listed.stdout.strip().splitlines()) == 3


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:40]), "episode 1: not an LZ4 frame or truncated"),
        (lambda p: p.write_bytes(b"garbage" * 10), "episode 1: not an LZ4 frame"),
        (
            lambda p: p.write_bytes(lz4.frame.compress(msgpack.packb({"format_version": 7}))),
            "episode 1: unsupported format version 7",
        ),
        (lambda p: p.unlink(), "episode 1: file 'episode_000001.msgpack.lz4' is missing"),
    ],
)
def test_bad_recordings_get_clear_errors_and_nothing_else_breaks(recorded, damage, message):
    index = RecordingIndex.for_run(recorded, create=False)
    damage(recorded / "recordings" / "episode_000001.msgpack.lz4")
    with pytest.raises(RecordingError, match=message):
        index.load(1)
    assert index.load(2).steps == 5, "other recordings are unaffected"


def test_paths_outside_the_recordings_folder_are_refused(recorded):
    db = sqlite3.connect(recorded / "recordings.db")
    with db:
        db.execute(
            "UPDATE episode_recordings SET file_path = '../recordings.db' WHERE episode_id = 2"
        )
        db.execute("UPDATE episode_recordings SET file_path = '/etc/passwd' WHERE episode_id = 3")
    index = RecordingIndex.for_run(recorded, create=False)
    for episode in (2, 3):
        with pytest.raises(RecordingError, match=f"episode {episode}: file_path .* points outside"):
            index.load(episode)


def dead_pid() -> int:
    """The pid of a process that has exited."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_reindex_rebuilds_from_files_and_reports_corrupt_ones(recorded):
    (recorded / "recordings" / "episode_000003.msgpack.lz4").write_bytes(b"broken")
    dead = recorded / "recordings" / f".episode_000009.msgpack.lz4.tmp-{dead_pid()}"
    dead.write_bytes(b"half")
    (recorded / "recordings.db").unlink()
    count, problems = reindex(recorded)
    assert count == 3 and len(problems) == 1 and "episode_000003" in problems[0]
    assert not dead.exists(), "a dead writer's temporary file is removed"
    index = RecordingIndex.for_run(recorded, create=False)
    assert [r["episode_id"] for r in index.list()] == [0, 1, 2]
    assert index.get(2)["recording_reasons"] == ["periodic_1", "stage_2_first_1"]


WRITER = """
import sys, torch
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import recorder_for, play
recorder = recorder_for(Path({run!r}), periodic=1, queue_size=64)
episode = 0
while True:
    play(recorder, episode, reward=float(episode), steps=50)
    episode += 1
"""


@pytest.mark.slow
def test_a_writer_killed_mid_write_leaves_a_consistent_index(tmp_path):
    script = WRITER.format(tests=str(ROOT / "tests"), run=str(tmp_path))
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    folder = tmp_path / "recordings"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(folder.glob("episode_*"))) < 20:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    index = RecordingIndex.for_run(tmp_path, create=False)
    rows = index.list(limit=None)
    assert len(rows) >= 10
    for row in rows:  # no row without its (whole) file
        assert index.load(row["episode_id"]).steps == 50
    for path in folder.glob("episode_*.msgpack.lz4"):  # no half file under a real name
        assert decode_episode(path.read_bytes(), path.name).steps == 50
    count, problems = reindex(tmp_path)
    assert not problems and count == len(list(folder.glob("episode_*.msgpack.lz4")))


def test_training_records_chosen_episodes_and_counts_them(tmp_path):
    from townlet.policy.train import train
    from townlet.scenarios import load_config

    train(
        load_config(
            [
                "scenario=kitchen_breakfast",
                "ppo=fast",
                "ppo.num_envs=4",
                "train.total_ticks=192",
                "recording=periodic",
                "recording.periodic=2",
            ]
        ),
        tmp_path,
    )
    index = RecordingIndex.for_run(tmp_path, create=False)
    ids = [r["episode_id"] for r in index.list(limit=None)]
    assert ids and all(i % 2 == 0 for i in ids) and ids == sorted(set(ids))
    episode = index.load(ids[0])
    assert episode.header["scenario"] == "kitchen_breakfast" and episode.steps == 30
    assert episode.columns["action_probs"].shape == (30, 2, 6)
    last = json.loads((tmp_path / "telemetry" / "ppo.jsonl").read_text().splitlines()[-1])
    assert (
        last["recording_episodes_written"] == len(ids) and last["recording_episodes_dropped"] == 0
    )


def test_encoded_episodes_are_self_describing():
    episode = Episode(
        header={"format_version": 2, "metadata": {"episode_id": 1}, "agent_ids": ["x"]},
        columns={"actions": np.zeros((3, 1), np.uint8), "meters": np.full((3, 1, 2), 0.25)},
    )
    data, size = encode_episode(episode)
    back = decode_episode(data, "episode 1", check=False)  # the codec alone: any columns
    assert back.header["agent_ids"] == ["x"] and size > len(data) * 0
    np.testing.assert_allclose(back.columns["meters"], 0.25, atol=1e-4)


def test_a_run_recording_a_town_without_affordances_writes_checkpoints_it_can_read(tmp_path):
    """evening_chat has no affordances, so the recorder's start state holds an empty stock;
    pickled as bytes() it made every checkpoint unreadable by the safe loader (resume, live
    and `townlet evaluate` refused them)."""
    from townlet.policy.checkpoint import load_checkpoint
    from townlet.policy.train import train
    from townlet.scenarios import load_config

    overrides = ["scenario=evening_chat", "ppo=fast", "ppo.num_envs=2", "tracking=off"]
    recording = ["recording=periodic", "recording.periodic=1"]
    train(load_config([*overrides, *recording, "train.total_ticks=32"]), tmp_path)
    data = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    start = data["recording"]["start"]["state"]
    assert start["stock"]["shape"] == [1, 0]
    resumed = train(
        load_config([*overrides, *recording, "train.total_ticks=64", "train.resume=true"]),
        tmp_path,
    )
    assert resumed.epochs > data["epoch"]
