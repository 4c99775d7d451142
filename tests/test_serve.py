"""The replay server over a real WebSocket: every message, every error, sessions, robustness."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from conftest import FIXTURES, play, receive, recorder_for, request, serving, until, url
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from townlet.serve.catalog import Catalog
from townlet.serve.server import ServeOptions, TownletServer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    recorder = recorder_for(run, periodic=1)
    for episode, (reward, stage) in enumerate([(1.0, 1), (4.0, 1), (2.5, 2)]):
        play(recorder, episode, reward=reward, stage=stage, steps=50)
    recorder.close()
    return run


def test_connect_list_load_and_state_updates(run_dir):
    @serving(Catalog.for_run(run_dir), step_delay=0.0)
    async def _(server):
        async with connect(url(server)) as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "connected" and hello["mode"] == "idle"
            assert hello["replay_available"] and not hello["live_available"]
            assert hello["runs"] == [run_dir.name] and hello["meter_names"][0] == "energy"
            assert hello["action_names"][5] == "INTERACT"
            listed = await request(
                ws, {"type": "list_recordings", "filters": {"stage": 1, "order": "episode"}}
            )
            assert [r["episode_id"] for r in listed["recordings"]] == [0, 1]
            assert set(listed["recordings"][0]) == {
                "episode_id",
                "survival_steps",
                "total_reward",
                "curriculum_stage",
                "recording_reason",
                "timestamp",
                "file_path",
                "file_size_bytes",
                "compressed_size_bytes",
                "run",
            }
            filtered = await request(
                ws,
                {
                    "type": "list_recordings",
                    "filters": {"min_reward": 2.0, "max_reward": 3.0, "limit": 5},
                },
            )
            assert [r["episode_id"] for r in filtered["recordings"]] == [2]
            reason = await request(
                ws,
                {
                    "type": "list_recordings",
                    "filters": {"reason": "periodic_1", "run": run_dir.name},
                },
            )
            assert len(reason["recordings"]) == 3
            loaded = await request(ws, {"type": "load_replay", "episode_id": 1})
            assert loaded["type"] == "replay_loaded" and loaded["total_steps"] == 50
            assert (
                loaded["metadata"]["total_reward"] == 4.0
                and loaded["metadata"]["curriculum_stage"] == 1
            )
            first = json.loads(await ws.recv())
            assert (
                first["type"] == "state_update" and first["mode"] == "replay" and first["step"] == 0
            )
            assert first["grid"]["width"] == 4 and first["grid"]["height"] == 2
            agent = first["grid"]["agents"][0]
            assert (
                agent["id"] == "a"
                and agent["last_action"] == {"id": 0, "name": "WAIT"}
                and agent["color"]
            )
            assert first["grid"]["affordances"][0] == {
                "type": "Bed",
                "name": "bed",
                "x": 0,
                "y": 0,
                "busy": False,
                "queue": [],
            }
            assert set(first["agent_meters"]["a"]["meters"]) == {
                "energy",
                "hygiene",
                "satiation",
                "money",
                "social",
            }
            assert set(first["action_probabilities"]["a"]) == set(hello["action_names"])
            assert first["time_of_day"] == 60 and first["interaction_progress"] == {
                "a": 0.0,
                "b": 0.0,
            }
            assert (
                first["replay_metadata"]["total_steps"] == 50
                and first["replay_metadata"]["current_step"] == 0
            )
            # play to the end: a true prefix sum of the rewards
            await ws.send(json.dumps({"command": "play"}))
            total, last = 0.0, None
            for _ in range(49):
                update = json.loads(await ws.recv())
                assert update["type"] == "state_update"
                total += update["reward"]
                last = update
            assert last["step"] == 49
            assert last["cumulative_reward"] == pytest.approx(first["reward"] + total, abs=1e-9)
            assert last["cumulative_reward"] == pytest.approx(4.0, abs=1e-5)
            finished = json.loads(await ws.recv())
            assert finished == {"type": "replay_finished", "episode_id": 1}


def test_step_seek_reset_speed_and_both_control_forms(run_dir):
    @serving(Catalog.for_run(run_dir), step_delay=0.05)
    async def _(server):
        async with connect(url(server)) as ws:
            await ws.recv()
            await request(ws, {"type": "load_replay", "episode_id": 0})
            await ws.recv()
            stepped = await request(ws, {"command": "step"})
            assert stepped["step"] == 1
            stepped = await request(ws, {"type": "replay_control", "action": "step"})
            assert stepped["step"] == 2
            sought = await request(
                ws, {"type": "replay_control", "action": "seek", "seek_step": 25}
            )
            assert sought["step"] == 25
            reset = await request(ws, {"command": "reset"})
            assert reset["step"] == 0
            # at speed 1 (0.05 s per step) a second play must not double the rate; timed as
            # lower bounds (a busy machine only makes frames later) and as a ratio
            await ws.send(json.dumps({"command": "play"}))
            await ws.send(json.dumps({"type": "replay_control", "action": "play"}))
            await receive(ws)
            at_one = await seconds_for_frames(ws, 10)
            assert at_one >= 10 * 0.05 * 0.8, at_one
            await ws.send(json.dumps({"command": "set_speed", "speed": 4.0}))
            await receive(ws)
            at_four = await seconds_for_frames(ws, 20)
            assert at_four >= 20 * 0.0125 * 0.8, at_four  # not faster than asked
            assert at_four < at_one, (at_four, at_one)  # twice the frames in about half the time
            await ws.send(json.dumps({"command": "pause"}))
            await asyncio.sleep(0.2)
            while True:  # drain what was sent before the pause took effect
                try:
                    await asyncio.wait_for(ws.recv(), timeout=0.2)
                except TimeoutError:
                    break
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), timeout=0.4)  # pause stops the stream


async def seconds_for_frames(ws, frames: int) -> float:
    start = time.perf_counter()
    for _ in range(frames):
        await receive(ws)
    return time.perf_counter() - start


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("{not json", "Malformed JSON"),
        ("[1, 2]", "A message must be a JSON object"),
        ('{"type": "teleport"}', "Unknown message type: teleport"),
        ('{"hello": 1}', "A message needs a 'type' or a 'command'"),
        ('{"type": "load_replay"}', "load_replay needs an 'episode_id'"),
        (
            '{"type": "load_replay", "episode_id": "seven"}',
            "Invalid episode_id: expected an integer",
        ),
        ('{"type": "load_replay", "episode_id": 424242}', "Recording not found: 424242"),
        (
            '{"type": "list_recordings", "filters": {"stage": "two"}}',
            "Invalid stage: expected an integer",
        ),
        ('{"type": "list_recordings", "filters": {"colour": 1}}', "Unknown filter: colour"),
        ('{"type": "list_recordings", "filters": {"limit": 0}}', "Invalid limit: 0"),
        ('{"command": "play"}', "Nothing to play: load a replay or a checkpoint first"),
        ('{"type": "load_checkpoint", "checkpoint": "latest"}', "Live mode not available"),
    ],
)
def test_bad_messages_get_an_error_and_the_connection_lives(run_dir, message, expected):
    @serving(Catalog.for_run(run_dir))
    async def _(server):
        async with connect(url(server)) as ws:
            await ws.recv()
            reply = await request(ws, message)
            assert reply["type"] == "error" and reply["message"].startswith(expected), reply
            alive = await request(ws, {"type": "list_recordings"})
            assert alive["type"] == "recordings_list"


def test_out_of_range_controls_and_binary_frames(run_dir):
    @serving(Catalog.for_run(run_dir))
    async def _(server):
        async with connect(url(server)) as ws:
            await ws.recv()
            await request(ws, {"type": "load_replay", "episode_id": 0})
            await ws.recv()
            bad = await request(ws, {"type": "replay_control", "action": "seek", "seek_step": 999})
            assert bad["message"] == "Invalid seek step: 999 (0-49)"
            for speed, text in (
                (0, "Invalid speed"),
                (-2, "Invalid speed"),
                ("fast", "Invalid speed: expected a number"),
                (True, "Invalid speed: expected a number"),
            ):
                reply = await request(ws, {"command": "set_speed", "speed": speed})
                assert reply["message"].startswith(text), reply
            assert (await request(ws, {"command": "set_speed"}))[
                "message"
            ] == "set_speed needs a 'speed'"
            await ws.send(b"\x00\x01binary")
            assert json.loads(await ws.recv())["message"].startswith(
                "Binary frames are not supported"
            )
            assert (await request(ws, {"command": "step"}))["step"] == 1


def test_errors_for_no_database_and_unreadable_or_escaping_files(run_dir, tmp_path):
    @serving(Catalog([]))
    async def _(server):
        async with connect(url(server)) as ws:
            assert not json.loads(await ws.recv())["replay_available"]
            reply = await request(ws, {"type": "list_recordings"})
            assert reply == {"type": "error", "message": "Replay not available (no database)"}

    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "recordings" / "episode_000001.msgpack.lz4").write_bytes(b"broken")
    with sqlite3.connect(copy / "recordings.db") as db:
        db.execute(
            "UPDATE episode_recordings SET file_path = '../../etc/passwd' WHERE episode_id = 2"
        )

    @serving(Catalog.for_run(copy))
    async def _(server):
        async with connect(url(server)) as ws:
            await ws.recv()
            broken = await request(ws, {"type": "load_replay", "episode_id": 1})
            assert broken["message"].startswith("Failed to load episode 1: not an LZ4 frame")
            escaping = await request(ws, {"type": "load_replay", "episode_id": 2})
            assert (
                escaping["message"].startswith("Failed to load episode 2: file_path")
                and "outside" in escaping["message"]
            )
            fine = await request(ws, {"type": "load_replay", "episode_id": 0})
            assert fine["type"] == "replay_loaded"


@pytest.mark.slow
def test_sessions_are_independent_and_oversize_frames_close_only_their_client(run_dir):
    @serving(Catalog.for_run(run_dir), step_delay=0.02)
    async def _(server):
        async with connect(url(server)) as one, connect(url(server)) as two:
            await one.recv()
            await two.recv()
            await request(one, {"type": "load_replay", "episode_id": 0})
            await one.recv()
            await request(two, {"type": "load_replay", "episode_id": 2})
            await two.recv()
            await one.send(json.dumps({"command": "play"}))
            await asyncio.sleep(0.3)
            moved = await request(two, {"command": "step"})
            assert moved["step"] == 1 and moved["episode_id"] == 2, "one's play never moves two"
            async with connect(url(server), max_size=None) as big:
                await big.recv()
                await big.send("x" * (200 * 1024))
                with pytest.raises(ConnectionClosed) as closed:
                    await big.recv()
                assert closed.value.rcvd.code == 1009
            assert (await request(two, {"command": "step"}))["step"] == 2


def test_a_burst_of_a_thousand_bad_messages_gets_a_thousand_errors(run_dir):
    @serving(Catalog.for_run(run_dir))
    async def _(server):
        async with connect(url(server)) as ws:
            await ws.recv()
            for i in range(1000):
                await ws.send(json.dumps({"type": f"bogus_{i}"}))
            replies = [json.loads(await ws.recv()) for _ in range(1000)]
            assert all(r["type"] == "error" for r in replies)
            assert replies[-1]["message"] == "Unknown message type: bogus_999"
            assert (await request(ws, {"type": "list_recordings"}))["type"] == "recordings_list"


@pytest.mark.slow
def test_a_client_that_stops_reading_does_not_slow_others(run_dir):
    @serving(Catalog.for_run(run_dir), step_delay=0.0)
    async def _(server):
        async with connect(url(server)) as stalled, connect(url(server)) as reader:
            await stalled.recv()
            await reader.recv()
            await request(stalled, {"type": "load_replay", "episode_id": 0})
            await stalled.recv()
            await stalled.send(json.dumps({"command": "set_speed", "speed": 1000}))
            await stalled.send(json.dumps({"command": "play"}))  # and never read again
            await request(reader, {"type": "load_replay", "episode_id": 1})
            await reader.recv()
            for _ in range(5):
                await reader.send(json.dumps({"command": "reset"}))
                await reader.recv()
                await reader.send(json.dumps({"command": "play"}))
                start = time.perf_counter()
                _, seen = await until(reader, "replay_finished")
                assert seen == 49 and time.perf_counter() - start < 2.0


def test_token_http_page_and_traversal(run_dir):
    with pytest.raises(ValueError, match="requires serve.token"):
        TownletServer(Catalog.for_run(run_dir), ServeOptions(host="0.0.0.0"))

    @serving(Catalog.for_run(run_dir), token="s3cret")
    async def _(server):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url(server)):
                pass
        assert refused.value.response.status_code == 403
        async with connect(url(server, "s3cret")) as ws:
            assert json.loads(await ws.recv())["type"] == "connected"

        def get(path):
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{server.port}{path}", timeout=5
                ) as r:
                    return r.status, r.headers["Content-Type"], r.read()
            except urllib.error.HTTPError as error:
                return error.code, None, b""

        status, kind, body = await asyncio.to_thread(get, "/")
        assert status == 200 and kind.startswith("text/html") and b"Townlet" in body
        assert (await asyncio.to_thread(get, "/../server.py"))[0] == 404
        assert (await asyncio.to_thread(get, "/nope.js"))[0] == 404


def test_version_one_fixtures_replay(tmp_path):
    @serving(Catalog.for_database(FIXTURES / "metrics.db", FIXTURES / "recordings"), step_delay=0.0)
    async def _(server):
        async with connect(url(server)) as ws:
            hello = json.loads(await ws.recv())
            assert hello["meter_names"][4] == "mood" and hello["action_names"][7] == "MEDITATE"
            listed = await request(ws, {"type": "list_recordings", "filters": {"order": "episode"}})
            assert [r["survival_steps"] for r in listed["recordings"]] == [
                500,
                274,
                500,
                92,
                234,
                208,
            ]
            for episode in (3, 5):
                loaded = await request(ws, {"type": "load_replay", "episode_id": episode})
                first = json.loads(await ws.recv())
                assert first["grid"]["width"] == 8 and "q_values" in first
                await ws.send(json.dumps({"command": "play"}))
                _, seen = await until(ws, "replay_finished")
                assert seen == loaded["total_steps"] - 1


@pytest.mark.slow
def test_live_mode_streams_episodes_and_load_replay_switches_back(trained_run):
    from townlet.serve.live import LiveFactory

    async def body():
        server = TownletServer(
            Catalog.for_run(trained_run),
            ServeOptions(port=0, step_delay=0.0),
            LiveFactory(trained_run),
        )
        await server.start()
        try:
            async with connect(url(server)) as ws:
                hello = await receive(ws)
                assert hello["live_available"] and hello["action_names"][5] == "INTERACT"
                bad = await request(ws, {"type": "load_checkpoint", "checkpoint": "/nowhere/x.pt"})
                assert bad["message"].startswith("Failed to load checkpoint /nowhere/x.pt")
                started = await request(ws, {"type": "load_checkpoint", "checkpoint": "latest"})
                assert (
                    started["type"] == "episode_start"
                    and started["scenario"] == "kitchen_breakfast"
                )
                updates = []
                while True:
                    message = await receive(ws)
                    if message["type"] == "episode_end":
                        break
                    updates.append(message)
                assert [u["step"] for u in updates] == list(range(30)), (
                    "one update per tick of the episode"
                )
                assert all(u["mode"] == "live" for u in updates)
                assert message["steps"] == 30
                assert message["total_reward"] == pytest.approx(updates[-1]["cumulative_reward"])
                assert set(updates[0]["action_probabilities"]["ann"]) == set(hello["action_names"])
                assert (await receive(ws))["type"] == "episode_start", "the next episode follows"
                await ws.send(json.dumps({"command": "pause"}))
                await ws.send(json.dumps({"type": "load_replay", "episode_id": 0}))
                await until(ws, "replay_loaded")
                first = await receive(ws)
                assert first["mode"] == "replay" and first["step"] == 0
        finally:
            await server.stop()

    asyncio.run(body())


def test_live_mode_refuses_replay_only_controls(trained_run):
    from townlet.serve.live import LiveFactory

    async def body():
        server = TownletServer(
            Catalog.for_run(trained_run),
            ServeOptions(port=0, step_delay=0.05),
            LiveFactory(trained_run),
        )
        await server.start()
        try:
            async with connect(url(server)) as ws:
                await receive(ws)
                await request(ws, {"type": "load_checkpoint", "checkpoint": "latest"})
                await ws.send(
                    json.dumps({"type": "replay_control", "action": "seek", "seek_step": 3})
                )
                error, _ = await until(ws, "error")
                assert (
                    error["message"]
                    == "seek is for replays; live mode supports play, pause and set_speed"
                )
        finally:
            await server.stop()

    asyncio.run(body())


def test_live_episodes_can_be_recorded_like_training_episodes(trained_run, tmp_path):
    import shutil

    from townlet.recording import RecordingIndex
    from townlet.serve.live import LiveFactory

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    rows = RecordingIndex.for_run(run, create=False).list(limit=None)
    before = max(row["episode_id"] for row in rows)

    async def body():
        live = LiveFactory(run, record=True)
        server = TownletServer(Catalog.for_run(run), ServeOptions(port=0, step_delay=0.0), live)
        await server.start()
        try:
            async with connect(url(server)) as ws:
                await receive(ws)
                started = await request(ws, {"type": "load_checkpoint", "checkpoint": "latest"})
                assert started["episode_id"] == before + 1, (
                    "live ids continue after the index's last"
                )
                await until(ws, "episode_end")
        finally:
            await server.stop()

    asyncio.run(body())
    index = RecordingIndex.for_run(run, create=False)
    row = index.get(before + 1)
    assert (
        row is not None and row["survival_steps"] == 30 and row["recording_reason"] == "periodic_1"
    )
    assert index.load(before + 1).header["run_id"] == f"live-{run.name}"


def test_branch_live_continues_a_recording_from_exactly_its_recorded_tick(trained_run):
    from townlet.recording import RecordingIndex
    from townlet.serve.live import LiveFactory

    index = RecordingIndex.for_run(trained_run, create=False)
    episode_id = index.list(limit=1, order="episode")[0]["episode_id"]
    recorded, step = index.load(episode_id), 12

    @serving(Catalog.for_run(trained_run), LiveFactory(trained_run), step_delay=0.0)
    async def body(server):
        async with connect(url(server)) as ws:
            await receive(ws)
            too_far = await request(
                ws, {"type": "branch_live", "episode_id": episode_id, "step": 999}
            )
            assert too_far["type"] == "error" and "outside the episode" in too_far["message"]
            branch = {"type": "branch_live", "episode_id": episode_id, "step": step}
            started = await request(ws, {**branch, "checkpoint": "latest"})
            assert started["type"] == "episode_start", started
            assert started["branched_from"] == {"episode_id": episode_id, "step": step}
            first, _ = await until(ws, "state_update")
            assert first["mode"] == "live" and first["step"] == step
            positions = [[a["x"], a["y"]] for a in first["grid"]["agents"]]
            assert positions == recorded.columns["positions"][step].tolist()
            meters = [list(m["meters"].values()) for m in first["agent_meters"].values()]
            np.testing.assert_allclose(meters, recorded.columns["meters"][step], atol=1e-4)
            await ws.send(json.dumps({"command": "pause"}))


@pytest.mark.slow
def test_live_sessions_share_a_checked_policy_until_its_file_changes(trained_run, tmp_path):
    """Each branch_live loaded and checked the checkpoint again (20-40 ms of held GIL)."""
    import shutil

    from townlet.serve.live import LiveFactory

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    factory = LiveFactory(run)
    first, second = factory.open("latest"), factory.open("latest")
    assert first.net is second.net and first.world is not second.world
    checkpoint = run / "checkpoints" / "latest.pt"
    data = torch.load(checkpoint, weights_only=True)
    data["model"] = {key: value + 1 for key, value in data["model"].items()}
    torch.save(data, checkpoint)
    third = factory.open("latest")
    assert third.net is not first.net
    fresh, old = third.net.state_dict(), first.net.state_dict()
    assert all(torch.equal(fresh[key], old[key] + 1) for key in old)
    for session in (first, second, third):
        session.close()
