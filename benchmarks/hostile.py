"""Time to refuse each hostile file or message of issue 27, and the server's memory: one JSON
line per case (the reply's first words, milliseconds from send to reply, the server process's
resident and peak memory after it), then one line for the server's memory before and after.
The server runs in this process (its memory is this process's), on 127.0.0.1, serving a real
trained run whose recordings folder also holds the hostile files.
Run: python benchmarks/hostile.py
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

import lz4.frame
import msgpack
import numpy as np
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from serve import emit, train_tiny_run  # noqa: E402

from townlet.recording import Episode, RecordingIndex, encode_episode, read_episode  # noqa: E402
from townlet.recording.index import row_for  # noqa: E402
from townlet.serve.catalog import Catalog  # noqa: E402
from townlet.serve.live import LiveFactory  # noqa: E402
from townlet.serve.server import ServeOptions, TownletServer  # noqa: E402


def rss_mb() -> tuple[float, float]:
    """(resident now, peak) of this process in MiB."""
    now = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            now = int(line.split()[1]) / 1024
    return now, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hostile_files(run: Path) -> dict[str, int]:
    """Write the hostile recordings beside the run's own; their ids by case."""
    folder = run / "recordings"
    index = RecordingIndex.for_run(run)
    good_row = index.list(limit=1)[0]
    good = read_episode(folder / good_row["file_path"])
    base = row_for(good, "bench", 1, 1)
    steps, agents = 5_000_000, len(good.header["agent_ids"])
    long_columns = {
        "positions": np.zeros((steps, agents, 2), np.uint8),
        "meters": np.zeros((steps, agents, len(good.header["meter_names"])), np.float16),
        "actions": np.zeros((steps, agents), np.uint8),
        "rewards": np.zeros((steps, agents), np.float16),
    }
    scenario = good.header.get("scenario_config") or {}
    header = good.header
    sized = {**header, "scenario_config": {**scenario, "width": 3000, "height": 3000}}
    interpolated = {**header, "scenario_config": {**scenario, "name": "${oc.env:HOME}"}}
    wrong_type = {"format_version": 2, "header": [], "columns": {}}
    with np.errstate(all="ignore"):  # all-zero columns: the codec's scale divides by zero
        cases = {
            "header asks for a 3000 x 3000 town": encode_episode(Episode(sized, good.columns))[0],
            "header holds ${oc.env:HOME}": encode_episode(Episode(interpolated, good.columns))[0],
            "1 GiB decompression bomb": lz4.frame.compress(bytes(2**30)),
            "5,000,000-step episode": encode_episode(Episode(header, long_columns))[0],
            "header of the wrong type": lz4.frame.compress(msgpack.packb(wrong_type)),
        }
    ids = {}
    for k, (case, data) in enumerate(cases.items()):
        episode_id = 900_000 + k
        name = f"episode_{episode_id:06d}.msgpack.lz4"
        (folder / name).write_bytes(data)
        index.insert([{**base, "episode_id": episode_id, "file_path": name}])
        ids[case] = episode_id
        emit("hostile_file_bytes", len(data), "bytes", case=case)
    index.close()
    return ids


async def drain(ws, quiet: float = 0.3) -> None:
    """Read whatever else the last request produced (a loaded replay's first frame)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), quiet)
    except TimeoutError:
        return


async def refusals(server: TownletServer, ids: dict[str, int]) -> None:
    address = f"ws://127.0.0.1:{server.port}/ws"
    messages: dict[str, str] = {}
    for case, episode_id in ids.items():
        kind = "branch_live" if case.startswith("header") else "load_replay"
        messages[f"{kind}: {case}"] = json.dumps(
            {"type": kind, "episode_id": episode_id, "step": 1, "checkpoint": "latest"}
        )
    messages.update(
        {
            "filters.order {}": json.dumps({"type": "list_recordings", "filters": {"order": {}}}),
            "episode id 2^64 - 1": json.dumps({"type": "load_replay", "episode_id": 2**64 - 1}),
            "checkpoint ../../etc/passwd": json.dumps(
                {"type": "load_checkpoint", "checkpoint": "../../etc/passwd"}
            ),
            "not JSON": "{not json",
            "a 60 KB frame of junk": "x" * 60_000,
        }
    )
    async with connect(address, max_size=None) as ws:
        await ws.recv()
        for case, message in messages.items():
            start = time.perf_counter()
            await ws.send(message)
            reply = json.loads(await ws.recv())
            while reply["type"] == "state_update":
                reply = json.loads(await ws.recv())
            elapsed = time.perf_counter() - start
            await drain(ws)
            now, peak = rss_mb()
            emit(
                "hostile_time_to_refuse",
                elapsed * 1e3,
                "ms",
                case=case,
                reply=reply["type"],
                message=str(reply.get("message", ""))[:120],
                server_rss_mib=round(now, 1),
                server_peak_rss_mib=round(peak, 1),
            )
        await ws.send(json.dumps({"type": "list_recordings"}))
        listed = json.loads(await ws.recv())
        assert listed["type"] == "recordings_list", listed  # the connection lived through it all


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = train_tiny_run(Path(tmp))
        # built in a child process, so this process's peak memory is the server's alone
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as child:
            ids = child.submit(hostile_files, run).result()
        before, _ = rss_mb()
        server = TownletServer(
            Catalog.for_run(run), ServeOptions(port=0), LiveFactory(run, record=False)
        )
        await server.start()
        try:
            await refusals(server, ids)
        finally:
            await server.stop()
        now, peak = rss_mb()
        emit(
            "hostile_server_memory",
            peak,
            "MiB peak resident",
            before_mib=round(before, 1),
            after_mib=round(now, 1),
            note="server and measuring client in one process; the files built in another",
        )


if __name__ == "__main__":
    asyncio.run(main())
