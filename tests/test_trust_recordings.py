"""Trust, recordings: any number of writers, reindex while they write, stray files, reasons
that the file and the row agree on, writer errors reported, and kills that lose nothing that
was whole (issue 14, items 8-12)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    ROOT,
    play,
    receive,
    recorder_for,
    request,
    train_killed_and_resumed,
    until,
    url,
)
from websockets.asyncio.client import connect

from townlet.recording import (
    Episode,
    RecordingError,
    RecordingIndex,
    encode_episode,
    read_episode,
    reindex,
)
from townlet.recording.index import FILE_PATTERN

CLAIMER = """
import sys
from pathlib import Path
from townlet.recording import RecordingIndex
index = RecordingIndex.for_run(Path({run!r}))
ids = [index.claim("writer-" + sys.argv[1])[0] for _ in range(60)]
print(" ".join(map(str, ids)))
"""


def files_and_rows(run: Path) -> tuple[set[int], dict[int, dict]]:
    files = {
        int(m.group(1))
        for p in (run / "recordings").iterdir()
        if (m := FILE_PATTERN.fullmatch(p.name))
    }
    rows = {r["episode_id"]: r for r in RecordingIndex.for_run(run, create=False).list(limit=None)}
    return files, rows


def test_concurrent_writers_in_separate_processes_never_share_an_id(tmp_path):
    RecordingIndex.for_run(tmp_path).close()
    script = CLAIMER.format(run=str(tmp_path))
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(i)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for i in range(4)
    ]
    claimed = [int(x) for w in workers for x in w.communicate(timeout=120)[0].split()]
    assert len(claimed) == 240 and len(set(claimed)) == 240


def test_a_training_number_taken_by_another_writer_gets_a_fresh_id(tmp_path):
    index = RecordingIndex.for_run(tmp_path)
    assert index.claim("live:x") == (0, True)
    index.close()
    recorder = recorder_for(tmp_path, periodic=1)
    play(recorder, 0, reward=1.0)
    play(recorder, 1, reward=2.0)
    assert recorder.close() == []
    files, rows = files_and_rows(tmp_path)
    assert files == set(rows) == {1, 2}, "episode 0 was claimed by the live writer"
    moved = read_episode(tmp_path / "recordings" / "episode_000001.msgpack.lz4")
    assert moved.metadata["episode_id"] == 1 and moved.metadata["source_episode"] == 0


def test_two_live_sessions_recording_into_one_run_lose_nothing(trained_run, tmp_path):  # noqa: F811
    from townlet.serve.catalog import Catalog
    from townlet.serve.live import LiveFactory
    from townlet.serve.server import ServeOptions, TownletServer

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    before, _ = files_and_rows(run)

    announced: list[int] = []

    async def body():
        server = TownletServer(
            Catalog.for_run(run), ServeOptions(port=0, step_delay=0.0), LiveFactory(run, True)
        )
        await server.start()
        try:
            async with connect(url(server)) as one, connect(url(server)) as two:
                starts = []
                for ws in (one, two):
                    await receive(ws)
                    starts.append(await request(ws, {"type": "load_checkpoint"}))
                assert starts[0]["episode_id"] != starts[1]["episode_id"]
                for _ in range(3):
                    ends = await asyncio.gather(
                        until(one, "episode_end"), until(two, "episode_end")
                    )
                    announced.extend(end["episode_id"] for end, _ in ends)
        finally:
            await server.stop()

    asyncio.run(body())
    files, rows = files_and_rows(run)
    assert files == set(rows), "every file has its row and every row its file"
    assert len(files - before) >= 6, "three whole episodes from each session"
    assert len(set(announced)) == 6 and set(announced) <= files, "recorded under the ids shown"
    for episode_id in files - before:
        episode = read_episode(run / "recordings" / f"episode_{episode_id:06d}.msgpack.lz4")
        assert episode.metadata["episode_id"] == episode_id and episode.steps == 30


WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import recorder_for, play
recorder = recorder_for(Path({run!r}), periodic=1, queue_size=64)
for episode in range({count}):
    play(recorder, episode, reward=float(episode), steps=40)
errors = recorder.close()
print("errors:", len(errors))
"""


@pytest.mark.slow
def test_reindex_while_a_writer_runs_drops_nothing(tmp_path):
    count = 80
    script = WRITER.format(tests=str(ROOT / "tests"), run=str(tmp_path), count=count)
    writer = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    merges, waited = 0, []
    while writer.poll() is None:
        if (tmp_path / "recordings").is_dir():
            reindex(tmp_path, notify=waited.append)
            merges += 1
        time.sleep(0.01)
    assert "errors: 0" in writer.stdout.read(), "the writer never failed"
    assert merges >= 3, "reindex ran while the writer was writing"
    files, rows = files_and_rows(tmp_path)
    assert files == set(rows) == set(range(count))


def test_stray_files_are_reported_and_skipped_and_resume_still_works(tmp_path):
    recorder = recorder_for(tmp_path, periodic=1)
    for episode in range(3):
        play(recorder, episode, reward=1.0)
    recorder.close()
    folder = tmp_path / "recordings"
    shutil.copy(folder / "episode_000001.msgpack.lz4", folder / "episode_000001 (copy).msgpack.lz4")
    shutil.copy(folder / "episode_000001.msgpack.lz4", folder / "episode_000050.msgpack.lz4")
    (tmp_path / "recordings.db").unlink()
    count, problems = reindex(tmp_path)
    assert count == 3 and len(problems) == 2
    assert any("(copy)" in p and "not an episode file name" in p for p in problems)
    assert any("episode_000050" in p and "holds episode 1" in p for p in problems)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recordings", "recordings.db"] + [
        n for n in ("recordings.db-shm", "recordings.db-wal") if (tmp_path / n).exists()
    ], "no temporary database is left behind"
    again = recorder_for(tmp_path, periodic=1)  # what train.resume does on start
    play(again, 3, reward=1.0)
    assert again.close() == []
    assert set(files_and_rows(tmp_path)[1]) == {0, 1, 2, 3}


def test_a_reason_added_later_is_in_the_file_and_the_row(tmp_path, monkeypatch):
    recorder = recorder_for(tmp_path, periodic=2, stage_pre_transition=3)
    original = recorder.index.write

    def slow(episode):  # the stage changes while episodes wait for the writer
        time.sleep(0.05)
        return original(episode)

    monkeypatch.setattr(recorder.index, "write", slow)
    for episode in range(6):
        play(recorder, episode, reward=1.0)
    recorder.stage_changed(2)
    assert recorder.close() == []
    _, rows = files_and_rows(tmp_path)
    assert set(rows) == {0, 2, 3, 4, 5}
    for episode_id, row in rows.items():
        meta = read_episode(tmp_path / "recordings" / row["file_path"]).metadata
        assert meta["recording_reasons"] == row["recording_reasons"], episode_id
        assert meta["recording_reason"] == row["recording_reason"], episode_id
    assert rows[4]["recording_reasons"] == ["periodic_2", "stage_2_pre_transition"]
    assert rows[3]["recording_reasons"] == ["stage_2_pre_transition"]


def test_writer_errors_are_reported(tmp_path, monkeypatch, caplog):
    recorder = recorder_for(tmp_path, periodic=1)

    def broken(episode):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(recorder.index, "write", broken)
    with caplog.at_level(logging.WARNING, logger="townlet.recording"):
        play(recorder, 0, reward=1.0)
        errors = recorder.close()
    assert len(errors) == 1 and "No space left on device" in errors[0]
    assert "No space left on device" in caplog.text


KITCHEN_RECORDED = [
    "scenario=kitchen_breakfast",
    "ppo=fast",
    "ppo.num_envs=4",
    "train.total_ticks=640",
    "recording=periodic",
    "recording.periodic=1",
    "tracking=off",
    "train.progress=false",
]


def train_args(run: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "experiments/train.py",
        *KITCHEN_RECORDED,
        f"hydra.run.dir={run}",
        *extra,
    ]


@pytest.mark.slow
def test_a_kill_at_any_moment_keeps_every_whole_episode(tmp_path):
    reference, killed = train_killed_and_resumed(train_args, tmp_path, kill_after=7, total=20)
    expected_files, expected_rows = files_and_rows(reference)
    files, rows = files_and_rows(killed)
    assert files == set(rows) == expected_files == set(expected_rows)
    for episode_id in files:
        mine = read_episode(killed / "recordings" / f"episode_{episode_id:06d}.msgpack.lz4")
        theirs = read_episode(reference / "recordings" / f"episode_{episode_id:06d}.msgpack.lz4")
        assert mine.steps == theirs.steps == 30, episode_id
        for name, column in theirs.columns.items():
            np.testing.assert_array_equal(mine.columns[name], column, err_msg=name)


def _rewrite_metadata(path: Path, **changes) -> None:
    episode = read_episode(path)
    header = {**episode.header, "metadata": {**episode.metadata, **changes}}
    data, _ = encode_episode(Episode(header, episode.columns))
    path.write_bytes(data)


def test_reindex_reports_each_bad_file_by_name_and_keeps_every_good_one(tmp_path):
    """Issue 27 item 6: a NaN total reward aborted the whole merge (IntegrityError), an id of
    2^64-1 raised OverflowError, a second zero padding of one id was silently dropped and a
    problem line did not name its file."""
    recorder = recorder_for(tmp_path, periodic=1)
    for episode in range(5):
        play(recorder, episode, reward=1.0)
    recorder.close()
    folder = tmp_path / "recordings"
    _rewrite_metadata(folder / "episode_000001.msgpack.lz4", total_reward=float("nan"))
    _rewrite_metadata(folder / "episode_000002.msgpack.lz4", survival_steps="thirty")
    huge = folder / f"episode_{2**64 - 1}.msgpack.lz4"
    shutil.copy(folder / "episode_000003.msgpack.lz4", huge)
    _rewrite_metadata(huge, episode_id=2**64 - 1)
    shutil.copy(folder / "episode_000004.msgpack.lz4", folder / "episode_0000004.msgpack.lz4")
    (tmp_path / "recordings.db").unlink()
    count, problems = reindex(tmp_path)
    assert count == 3, problems  # episodes 0, 3 and 4
    assert set(files_and_rows(tmp_path)[1]) == {0, 3, 4}
    assert len(problems) == 4, problems
    named = {
        "episode_000001.msgpack.lz4": "total_reward",
        "episode_000002.msgpack.lz4": "survival_steps",
        huge.name: "episode id",
        "episode_0000004.msgpack.lz4": "episode_000004.msgpack.lz4",
    }
    for name, says in named.items():
        assert any(p.startswith(name + ":") and says in p for p in problems), (name, problems)


RECURSIVE_VIEW = """
CREATE VIEW episode_recordings AS
WITH RECURSIVE n(episode_id) AS (SELECT 0 UNION ALL SELECT episode_id + 1 FROM n)
SELECT episode_id, 1 AS survival_steps, 0.0 AS total_reward, 0 AS curriculum_stage,
       '' AS recording_reason, 0.0 AS timestamp, 'x' AS file_path, 0 AS file_size_bytes,
       0 AS compressed_size_bytes, NULL AS run_id, NULL AS scenario,
       NULL AS recording_reasons, 2 AS format_version FROM n;
"""


@pytest.mark.parametrize("create", [False, True])
def test_an_index_whose_recordings_are_an_endless_view_is_refused_at_once(tmp_path, create):
    """Issue 27 item 7: a valid SQLite file whose episode_recordings is a recursive VIEW hung
    the server (no client ever received `connected`) and any reindex."""
    import sqlite3

    (tmp_path / "recordings").mkdir()
    connection = sqlite3.connect(tmp_path / "recordings.db")
    connection.executescript(RECURSIVE_VIEW)
    connection.close()
    started = time.perf_counter()
    if create:  # reindex: the hostile file is set aside and the index rebuilt from the files
        count, problems = reindex(tmp_path)
        assert count == 0 and problems == []
        assert RecordingIndex.for_run(tmp_path, create=False).list(limit=None) == []
    else:
        with pytest.raises(RecordingError, match="not a table"):
            RecordingIndex.for_run(tmp_path, create=False)
    assert time.perf_counter() - started < 5
