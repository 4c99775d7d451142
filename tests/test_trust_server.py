"""Trust, the server: no client can run code, probe files, stall others, or kill its connection
with a bad message or a malformed recording (issue 14, items 1-7)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import lz4.frame
import msgpack
import numpy as np
import pytest
import torch
from conftest import play, receive, recorder_for, request, serving, url
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from townlet.policy.checkpoint import CheckpointError, load_checkpoint
from townlet.recording import Episode, RecordingIndex, encode_episode, read_episode
from townlet.recording.index import row_for
from townlet.serve.catalog import Catalog
from townlet.serve.server import ServeOptions, TownletServer

ROOT = Path(__file__).resolve().parents[1]


class Boom:
    """Unpickling this runs code: what a hostile checkpoint would hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def hostile_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format_version": 2, "model": Boom(marker)}, path)
    return path


@pytest.mark.slow
def test_a_pickle_checkpoint_never_runs_code_in_any_loader(tmp_path):
    marker = tmp_path / "pwned"
    evil = hostile_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError, match="never unpickled"):
        load_checkpoint(evil)
    assert not marker.exists()
    # capture.policy and train.resume read checkpoints through the same loader
    for override in (f"capture.policy={evil}", f"train.resume={evil}"):
        entry = "capture.py" if override.startswith("capture") else "train.py"
        done = subprocess.run(
            [
                sys.executable,
                f"experiments/{entry}",
                "scenario=kitchen_breakfast",
                "ppo=fast",
                "ppo.num_envs=4",
                "train.total_ticks=32",
                "tracking=off",
                override,
                f"hydra.run.dir={tmp_path / entry}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode != 0 and "never unpickled" in done.stderr, done.stderr[-2000:]
        assert not marker.exists(), f"{entry} ran the pickle's code"


def test_an_old_format_checkpoint_gets_a_clear_error(tmp_path):
    old = tmp_path / "old.pt"
    torch.save({"format_version": 1, "model": {}}, old)
    with pytest.raises(CheckpointError, match="format 1 from an older Townlet"):
        load_checkpoint(old)


def live_server(run: Path, **options):
    from townlet.serve.live import LiveFactory

    return TownletServer(
        Catalog.for_run(run), ServeOptions(port=0, **options), LiveFactory(run, record=False)
    )


def test_load_checkpoint_accepts_only_the_served_runs_checkpoints(trained_run, tmp_path):  # noqa: F811
    marker = tmp_path / "pwned"
    inside = hostile_checkpoint(trained_run / "checkpoints" / "evil.pt", marker)
    outside = hostile_checkpoint(tmp_path / "elsewhere" / "evil.pt", marker)

    async def body():
        server = live_server(trained_run, step_delay=0.05)
        await server.start()
        try:
            async with connect(url(server)) as ws:
                await receive(ws)
                reply = await request(ws, {"type": "load_checkpoint", "checkpoint": "evil"})
                assert reply["type"] == "error" and "never unpickled" in reply["message"]
                assert str(trained_run) not in reply["message"], "no absolute paths in errors"
                refusals = []
                for probe in (str(outside), "/etc/passwd", "/no/such/file.pt", "../../x.pt"):
                    reply = await request(ws, {"type": "load_checkpoint", "checkpoint": probe})
                    assert reply["type"] == "error"
                    refusals.append(reply["message"].split(": ", 1)[1])
                assert len(set(refusals)) == 1, "existing and missing outside files read alike"
                ok = await request(ws, {"type": "load_checkpoint", "checkpoint": "best"})
                assert ok["type"] == "episode_start"
                again = await request(ws, {"type": "load_checkpoint", "checkpoint": "latest.pt"})
                while again["type"] != "episode_start":
                    again = await receive(ws)
        finally:
            await server.stop()

    asyncio.run(body())
    assert not marker.exists()
    (trained_run / "checkpoints" / "evil.pt").unlink()
    assert inside != outside


def one_episode_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    recorder = recorder_for(run, periodic=1)
    play(recorder, 0, reward=1.0)
    recorder.close()
    return run


def test_cross_origin_browsers_are_refused_and_the_token_holds_on_localhost(tmp_path):
    run = one_episode_run(tmp_path)

    @serving(Catalog.for_run(run), allowed_origins=("http://viewer.example:8080",))
    async def _(server):
        own = f"http://127.0.0.1:{server.port}"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url(server), origin="http://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        async with connect(url(server), origin=own) as ws:
            assert (await receive(ws))["type"] == "connected"
        async with connect(url(server), origin="http://viewer.example:8080") as ws:
            assert (await receive(ws))["type"] == "connected"
        async with connect(url(server)) as ws:  # no Origin: not a browser (scripts, tests)
            assert (await receive(ws))["type"] == "connected"

    @serving(Catalog.for_run(run), token="s3cret")
    async def _(server):
        with pytest.raises(InvalidStatus):
            async with connect(url(server)):
                pass
        async with connect(url(server, "s3cret")) as ws:
            assert (await receive(ws))["type"] == "connected"


async def handshake_status(server, path: str, host: str, origin: str | None = None) -> int:
    """The HTTP status of a WebSocket handshake (or page request) with these headers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *([f"Origin: {origin}"] if origin else []),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.close()
    return int(status.split()[1])


def test_dns_rebinding_is_refused_and_a_non_ascii_token_is_a_403(tmp_path):
    run = one_episode_run(tmp_path)

    @serving(Catalog.for_run(run), allowed_hosts=("viewer.lan",))
    async def _(server):
        port = server.port
        # a rebinding page: its own name resolves to 127.0.0.1, so Host and Origin agree
        evil = f"evil.example:{port}"
        assert await handshake_status(server, "/ws", evil, f"http://{evil}") == 403
        assert await handshake_status(server, "/", evil) == 403
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"viewer.lan:{port}"):
            assert await handshake_status(server, "/ws", host, f"http://{host}") == 101, host

    @serving(Catalog.for_run(run), token="s3cret")
    async def _(server):
        host = f"127.0.0.1:{server.port}"
        assert await handshake_status(server, "/ws?token=%C3%A9", host) == 403
        assert await handshake_status(server, "/ws?token=%FF", host) == 403
        assert await handshake_status(server, "/ws?token=s3cret", host) == 101


# ------------------------------------------------------------------ malformed recordings
def raw_file(payload: bytes | dict) -> bytes:
    packed = payload if isinstance(payload, bytes) else msgpack.packb(payload, use_bin_type=True)
    return lz4.frame.compress(packed)


def altered(episode: Episode, header: dict | None = None, **columns) -> bytes:
    head = {**episode.header, **(header or {})}
    for key in [k for k, v in (header or {}).items() if v is None]:
        del head[key]
    return encode_episode(Episode(head, {**episode.columns, **columns}))[0]


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("hostile")
    recorder = recorder_for(run, periodic=1)
    play(recorder, 0, reward=1.0, steps=20)
    recorder.close()
    good = read_episode(run / "recordings" / "episode_000000.msgpack.lz4")
    base_row = row_for(good, "x", 1, 1)
    cols = good.columns
    cases = {
        10: raw_file({"format_version": 2, "header": {}, "columns": []}),
        11: raw_file({"format_version": 2, "header": {"metadata": {"episode_id": 11}}}),
        12: altered(good, {"agent_ids": None}),
        13: altered(good, positions=np.full_like(cols["positions"], 200)),
        14: altered(good, actions=np.full_like(cols["actions"], 99)),
        15: altered(good, **{k: v[:0] for k, v in cols.items()}),
        16: raw_file(b"\x81" + msgpack.packb([1, 2]) + msgpack.packb(1)),  # {[1, 2]: 1}
        17: raw_file({"format_version": 2, "header": [], "columns": {}}),
        18: altered(good, {"grid": {"width": "wide", "height": 3}}),
        19: raw_file(np.zeros(3 * 2**20, np.uint8).tobytes()),  # a 3 MiB inflation
    }
    index = RecordingIndex.for_run(run)
    for episode_id, data in cases.items():
        name = f"episode_{episode_id:06d}.msgpack.lz4"
        (run / "recordings" / name).write_bytes(data)
        index.insert([{**base_row, "episode_id": episode_id, "file_path": name}])
    index.close()
    return run, sorted(cases)


def test_every_malformed_recording_is_an_error_reply_and_the_connection_lives(hostile_run):
    run, bad_ids = hostile_run

    @serving(Catalog.for_run(run, max_episode_bytes=2**20))
    async def _(server):
        async with connect(url(server)) as ws:
            await receive(ws)
            for episode_id in bad_ids:
                reply = await request(ws, {"type": "load_replay", "episode_id": episode_id})
                assert reply["type"] == "error", (episode_id, reply)
                assert reply["message"].startswith(f"Failed to load episode {episode_id}: "), reply
            for message, key in (
                ({"type": "load_replay", "episode_id": 2**63}, "episode_id"),
                ({"type": "load_replay", "episode_id": 2**70}, "episode_id"),
                ({"type": "load_replay", "episode_id": -1}, "episode_id"),
                ({"type": "list_recordings", "filters": {"stage": 2**63}}, "stage"),
                ({"type": "list_recordings", "filters": {"stage": -(2**63) - 1}}, "stage"),
                ({"type": "list_recordings", "filters": {"limit": 2**64}}, "limit"),
            ):
                reply = await request(ws, json.dumps(message))
                assert reply["type"] == "error" and f"Invalid {key}" in reply["message"], reply
            listed = await request(ws, {"type": "list_recordings"})
            assert listed["type"] == "recordings_list" and len(listed["recordings"]) == 11
            fine = await request(ws, {"type": "load_replay", "episode_id": 0})
            assert fine["type"] == "replay_loaded"


def test_an_inflating_file_is_refused_and_the_cache_is_bounded_by_bytes(hostile_run):
    run, _ = hostile_run
    catalog = Catalog.for_run(run, max_episode_bytes=2**20, cache_bytes=1)
    with pytest.raises(RuntimeError, match="decompresses to more than the 1 MiB allowed"):
        catalog.frames(19)
    first = catalog.frames(0)
    assert catalog.frames(0) is first, "one episode is always kept, even past the budget"
    roomy = Catalog.for_run(run, cache_bytes=first.nbytes * 10)
    roomy.frames(0)
    assert roomy.frames(0) is roomy.frames(0), "a cached episode is reused"


def test_speeds_and_step_delays_are_sane(tmp_path):
    run = one_episode_run(tmp_path)
    for delay in (float("nan"), float("inf"), -1.0, 61.0):
        with pytest.raises(ValueError, match="step_delay"):
            ServeOptions(step_delay=delay)
    cli = subprocess.run(
        [sys.executable, "-m", "townlet.serve", "--db", str(run / "recordings.db")]
        + ["--recordings", str(run / "recordings"), "--step-delay", "nan", "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 2 and "step_delay" in cli.stderr and "Traceback" not in cli.stderr

    @serving(Catalog.for_run(run))
    async def _(server):
        async with connect(url(server)) as ws:
            await receive(ws)
            await request(ws, {"type": "load_replay", "episode_id": 0})
            assert (await receive(ws))["type"] == "state_update"
            for tiny in (5e-324, 0.001, 0, -1, 1e9):
                reply = await request(ws, {"command": "set_speed", "speed": tiny})
                assert reply["type"] == "error" and "Invalid speed" in reply["message"]
            await ws.send(json.dumps({"command": "set_speed", "speed": 0.01}))
            await ws.send(json.dumps({"command": "seek", "seek_step": 1}))
            assert (await receive(ws))["step"] == 1, "the slowest speed is still accepted"


def test_start_up_names_a_bad_database_and_skips_a_corrupt_run(tmp_path):
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_text("hello, this is not a database " * 100)
    cli = subprocess.run(
        [sys.executable, "-m", "townlet.serve", "--db", str(not_sqlite)]
        + ["--recordings", str(tmp_path), "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = cli.stderr.strip().splitlines()
    assert cli.returncode == 2 and len(lines) == 1 and str(not_sqlite) in lines[0], cli.stderr

    root = tmp_path / "runs"
    for name in ("good", "bad"):
        recorder = recorder_for(root / name, periodic=1)
        play(recorder, 0, reward=1.0)
        recorder.close()
    for suffix in ("-wal", "-shm"):
        (root / "bad" / f"recordings.db{suffix}").unlink(missing_ok=True)
    (root / "bad" / "recordings.db").write_bytes(b"\x00garbage" * 512)
    catalog = Catalog.for_root(root)
    assert catalog.runs() == ["good"] and "bad" in catalog.skipped[0]


# ------------------------------------------------------------------ one client, many clients
def test_a_client_spamming_loads_without_reading_stalls_nobody(hostile_run):
    run, _ = hostile_run

    @serving(Catalog.for_run(run))
    async def _(server):
        spammer = await connect(url(server), max_queue=1)
        await receive(spammer)
        message = json.dumps({"type": "load_replay", "episode_id": 0})

        async def spam():
            for _ in range(30_000):  # more replies than the kernel's socket buffers hold
                await spammer.send(message)

        flood = asyncio.create_task(spam())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and max(s.replies for s in server.sessions) < 64:
            await asyncio.sleep(0.05)
        assert max(s.replies for s in server.sessions) >= 64, "the spammer's backlog filled"
        times = []
        for _ in range(20):
            start = time.perf_counter()
            async with connect(url(server), open_timeout=5) as other:
                await receive(other)
                listed = await request(other, {"type": "list_recordings"})
                assert listed["type"] == "recordings_list"
            times.append(time.perf_counter() - start)
        backlog = max(s.replies for s in server.sessions)
        assert backlog <= 64 + 2, "replies queued for a client that does not read are bounded"
        assert max(times) < 2.0, times
        flood.cancel()
        spammer.transport.abort()  # it never reads, so it cannot finish a closing handshake


def test_the_cache_counts_an_episodes_header_not_only_its_columns(tmp_path):
    """A small file can carry a header of many megabytes (it compresses to nothing); the cache
    counted only columns and frames, so such episodes filled memory past `cache_bytes`."""
    run = one_episode_run(tmp_path)
    path = run / "recordings" / "episode_000000.msgpack.lz4"
    plain = read_episode(path)
    padded = {**plain.header, "notes": ["x" * 1000 for _ in range(8000)]}  # ~8 MB held
    data, _ = encode_episode(Episode(padded, plain.columns))
    path.write_bytes(data)
    assert len(data) < 200_000
    frames = Catalog.for_run(run).frames(0)
    assert frames.nbytes > 8 * 10**6, frames.nbytes


class SlowCatalog(Catalog):
    """A real catalog whose episode opens take as long as a hostile file's rebuild."""

    delay = 1.5

    def frames(self, episode_id, run=None):
        time.sleep(self.delay)
        return super().frames(episode_id, run)


def test_a_list_is_answered_while_every_heavy_worker_is_busy(tmp_path):
    """Heavy and light jobs shared one pool: ten slow opens took every worker and a third
    client's list_recordings waited for them (73.6 s on 600 x 600 headers)."""
    run = one_episode_run(tmp_path)
    catalog = SlowCatalog.for_run(run)

    @serving(catalog)
    async def _(server):
        heavy = [await connect(url(server)) for _ in range(10)]
        for ws in heavy:
            await receive(ws)  # connected
            await ws.send(json.dumps({"type": "load_replay", "episode_id": 0}))
        async with connect(url(server)) as light:
            await receive(light)
            await asyncio.sleep(0.2)  # every open is running or queued
            start = time.perf_counter()
            listed = await request(light, {"type": "list_recordings"})
            waited = time.perf_counter() - start
        assert listed["type"] == "recordings_list" and waited < 1.0, waited
        for ws in heavy:
            await ws.close()


def test_heavy_work_past_its_bound_is_refused_as_busy_and_the_rest_served(tmp_path):
    from townlet.serve.lanes import Lanes

    run = one_episode_run(tmp_path)

    @serving(SlowCatalog.for_run(run))
    async def _(server):
        server.lanes = Lanes(heavy_workers=2, heavy_limit=3)
        clients = [await connect(url(server)) for _ in range(5)]
        for ws in clients:
            await receive(ws)
            await ws.send(json.dumps({"type": "load_replay", "episode_id": 0}))
        replies = [await receive(ws, timeout=20) for ws in clients]
        kinds = sorted(r["type"] for r in replies)
        assert kinds == ["error", "error", "replay_loaded", "replay_loaded", "replay_loaded"]
        assert all("Server busy" in r["message"] for r in replies if r["type"] == "error")
        for ws in clients:
            await ws.close()


def test_a_long_episode_keeps_a_bounded_window_of_encoded_frames(tmp_path):
    """Every played step's encoded frame was kept for the life of the cached episode: a long
    recording held all of them (5,000,000 steps held 3.4 GB). Now a window is kept, and the
    cache counts at most that window (2,048 steps)."""
    run = one_episode_run(tmp_path)
    path = run / "recordings" / "episode_000000.msgpack.lz4"
    short = read_episode(path)
    repeats = -(-3000 // short.steps)
    columns = {k: np.concatenate([v] * repeats)[:3000] for k, v in short.columns.items()}
    path.write_bytes(encode_episode(Episode(short.header, columns))[0])
    frames = Catalog.for_run(run).frames(0)
    assert frames.steps == 3000
    first = frames.encoded(0)
    for step in range(frames.steps):
        frames.encoded(step)
    kept = frames.nbytes - frames.header_bytes
    columns = 8 * sum(int(a.nbytes) for a in frames.episode.columns.values())
    assert kept <= columns + 2048 * len(first) * 1.1, (kept, columns)
    assert frames.encoded(0) == first  # an evicted step is encoded again, the same


def test_a_long_episodes_series_is_bounded_and_its_cumulative_reward_exact(tmp_path):
    """`episode_series` sent every step of every line: 5,000,000 steps took 2 s of the event
    loop. Past 2,048 steps the lines are sampled with a stride, rewards summed over it."""
    run = one_episode_run(tmp_path)
    path = run / "recordings" / "episode_000000.msgpack.lz4"
    short = read_episode(path)
    steps = 10_000
    repeats = -(-steps // short.steps)
    columns = {k: np.concatenate([v] * repeats)[:steps] for k, v in short.columns.items()}
    path.write_bytes(encode_episode(Episode(short.header, columns))[0])
    frames = Catalog.for_run(run).frames(0)
    series = json.loads(frames.series_bytes())
    assert series["steps"] == steps and series["stride"] == 5
    first = next(iter(series["agents"].values()))
    assert len(first["reward"]) == 2000
    assert all(len(line) == 2000 for line in first["meters"].values())
    whole = float(columns["rewards"][:, 0].astype(np.float64).sum())
    assert sum(first["reward"]) == pytest.approx(whole, abs=1e-2)
    assert series["markers_total"] >= len(series["markers"])
    brief = json.loads(Catalog.for_run(one_episode_run(tmp_path / "b")).frames(0).series_bytes())
    assert (
        brief["stride"] == 1
        and len(next(iter(brief["agents"].values()))["reward"]) == (brief["steps"])
    )


class BriefCatalog(SlowCatalog):
    delay = 0.2


def test_many_viewers_opening_together_are_all_served(tmp_path):
    """The bound on heavy work is on runaway numbers, not on a room of viewers: with a bound of
    16, the 17th of 20 viewers opening at once was refused (benchmarks/serve.py's 100 clients
    waited forever for a replay)."""
    run = one_episode_run(tmp_path)

    @serving(BriefCatalog.for_run(run))
    async def _(server):
        clients = [await connect(url(server)) for _ in range(20)]
        for ws in clients:
            await receive(ws)
            await ws.send(json.dumps({"type": "load_replay", "episode_id": 0}))
        replies = [await receive(ws, timeout=30) for ws in clients]
        assert [r["type"] for r in replies] == ["replay_loaded"] * 20
        for ws in clients:
            await ws.close()
