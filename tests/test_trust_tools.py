"""Trust, tools: video export and the telemetry tools never crash on bad input (issue 14,
items 17 and 18)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import play, recorder_for, sample, tool, write_log
from test_video import cli

from townlet.recording import Episode, encode_episode, read_episode

ROOT = Path(__file__).resolve().parents[1]


def recorded_run(root: Path) -> Path:
    recorder = recorder_for(root, periodic=1)
    for episode in range(3):
        play(recorder, episode, reward=1.0, steps=10)
    recorder.close()
    return root


def video_args(run: Path) -> list:
    return ["--database", run / "recordings.db", "--recordings", run / "recordings"]


def test_batch_reports_a_malformed_but_decodable_episode_and_goes_on(tmp_path):
    run = recorded_run(tmp_path / "run")
    good = read_episode(run / "recordings" / "episode_000001.msgpack.lz4")
    columns = {**good.columns, "positions": np.full_like(good.columns["positions"], 250)}
    data, _ = encode_episode(Episode(good.header, columns))
    (run / "recordings" / "episode_000001.msgpack.lz4").write_bytes(data)
    out = tmp_path / "videos"
    done = cli("batch", "--output-dir", out, *video_args(run), "--dpi", "20", "--fps", "5")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "episode 1: " in done.stderr and "off the grid" in done.stderr
    assert sorted(p.name for p in out.glob("*")) == ["episode_000000.mp4", "episode_000002.mp4"]


@pytest.mark.slow
def test_export_to_a_folder_proc_or_dpi_zero_is_a_clear_error(tmp_path):
    run = recorded_run(tmp_path / "run")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    for output, extra, expected in (
        (folder, [], "is a folder"),
        (Path("/proc/townlet.mp4"), [], "cannot write"),
        (tmp_path / "x.mp4", ["--dpi", "0"], "dpi must be in"),
        (tmp_path / "y.mp4", ["--dpi", "-3"], "dpi must be in"),
    ):
        done = cli("export", "0", "--output", output, *video_args(run), *extra)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and expected in lines[0], done.stderr
    assert not list(tmp_path.glob("*.mp4"))


@pytest.mark.slow
def test_telemetry_tools_give_one_line_for_hostile_logs(tmp_path):
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    huge = write_log(tmp_path / "huge.jsonl", [sample(epoch=1, loss_total="x" * 5_000_000)])
    typed = write_log(tmp_path / "typed.jsonl", [sample(epoch=1), sample(epoch=2, lr="fast")])
    keyless = write_log(tmp_path / "keyless.jsonl", [{"hello": 1}])
    for verb, log in (
        ("validate", deep),
        ("summary", deep),
        ("validate", huge),
        ("summary", huge),
        ("summary", typed),
        ("summary", keyless),
    ):
        done = tool(verb, log)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (verb, log.name, done.stderr[-500:])
        assert len(lines) == 1 and lines[0].startswith("error: "), (verb, log.name, lines[:3])
        assert len(lines[0]) < 600, "values are quoted short"
    assert "lr" in tool("summary", typed).stderr and ":2:" in tool("summary", typed).stderr
    for last in ("-5", "0", "many"):
        done = tool("summary", typed, "--last", last)
        assert done.returncode == 2 and "--last" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_plot_to_an_unwritable_path_is_a_clear_error(tmp_path):
    log = write_log(tmp_path / "ppo.jsonl", [sample(epoch=1), sample(epoch=2)])
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    for target in (blocker / "plot.png", Path("/proc/plot.png")):
        done = tool("plot", log, "--output", target)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and "cannot write the plot" in lines[0]


def test_watch_alerts_on_nan_against_a_threshold(tmp_path):
    log = tmp_path / "ppo.jsonl"
    log.write_text(
        json.dumps(sample(epoch=1, kl_divergence=0.01))
        + "\n"
        + json.dumps(sample(epoch=2)).replace('"kl_divergence": ', '"kl_divergence": NaN, "x": ')
        + "\n"
    )
    done = tool("watch", log, "--kl-threshold", "0.5")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Epoch 2: kl_divergence is nan" in done.stdout
    # without any threshold too (issue 27 item 10: it printed kl_divergence=nan and exited 0)
    done = tool("watch", log)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Epoch 2: kl_divergence is nan (no threshold: always an alert)" in done.stdout


def test_watch_follow_survives_copy_then_truncate_rotation(tmp_path):
    log = tmp_path / "ppo.jsonl"
    log.write_text("".join(json.dumps(sample(epoch=e, kl_divergence=0.01)) + "\n" for e in (1, 2)))
    process = subprocess.Popen(
        [sys.executable, "-m", "townlet.telemetry", "watch", str(log), "--follow", "--json"]
        + ["--interval", "0.05", "--kl-threshold", "0.5"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def rotate():
        time.sleep(1.0)
        shutil.copy(log, tmp_path / "ppo.jsonl.1")  # logrotate's copytruncate
        with open(log, "r+") as handle:
            handle.truncate(0)
        time.sleep(0.5)
        with open(log, "a") as handle:
            handle.write(json.dumps(sample(epoch=3, kl_divergence=0.9)) + "\n")

    thread = threading.Thread(target=rotate)
    thread.start()
    try:
        out, err = process.communicate(timeout=30)
    finally:
        thread.join()
        if process.poll() is None:
            process.kill()
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["epoch"] for r in records if r["type"] == "record"] == [1, 2, 3], err
    assert records[-1]["type"] == "alert" and records[-1]["epoch"] == 3


def test_ids_stages_and_limits_beyond_sqlite_integers_are_usage_errors(tmp_path):
    """`recordings list --limit 2^63` and `--stage 10^20` were OverflowError tracebacks."""
    from townlet.cli import main

    run = tmp_path / "run"
    recorder = recorder_for(run, periodic=1)
    play(recorder, 0, reward=1.0)
    recorder.close()
    for argv in (
        ["recordings", "list", str(run), "--limit", str(2**63)],
        ["recordings", "list", str(run), "--stage", str(10**20)],
        ["recordings", "verify", str(run), "--episode", str(2**64 - 1)],
        ["recordings", "list", str(run), "--limit", "-1"],
    ):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 2, argv
    assert main(["recordings", "list", str(run), "--limit", str(2**63 - 1)]) == 0


@pytest.mark.slow
def test_telemetry_tools_refuse_devices_folders_fifos_and_odd_versions(tmp_path):
    """Issue 27 item 10: `telemetry_version` as an object was a TypeError; watch, summary and
    plot on /dev/zero grew until MemoryError; validate called a folder or FIFO 'no such file'."""
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    odd = write_log(tmp_path / "odd.jsonl", [sample(epoch=1, telemetry_version={"a": 1})])
    cases = [
        (("validate", odd), "telemetry_version"),
        (("validate", tmp_path), "a directory"),
        (("validate", fifo), "not a regular file"),
        (("summary", fifo), "not a regular file"),
        (("summary", "/dev/zero"), "not a regular file"),
        (("watch", "/dev/zero"), "not a regular file"),
        (("plot", "/dev/zero", "--output", tmp_path / "p.png"), "not a regular file"),
    ]
    for args, says in cases:
        done = tool(*args, timeout=30)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (args, done.stderr[-400:])
        assert len(lines) == 1 and says in lines[0], (args, lines[:3])


def test_video_export_of_an_id_beyond_sqlite_or_a_header_config_of_the_wrong_type_is_one_line(
    tmp_path,
):
    """`video export 10^20` was an OverflowError traceback; a header whose world_config is a
    list an AttributeError traceback."""
    run = recorded_run(tmp_path / "run")
    done = cli("export", str(10**20), "--output", tmp_path / "a.mp4", *video_args(run))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "outside [0, 2^63 - 1]" in done.stderr
    path = run / "recordings" / "episode_000001.msgpack.lz4"
    good = read_episode(path)
    data, _ = encode_episode(Episode({**good.header, "world_config": [1, 2]}, good.columns))
    path.write_bytes(data)
    done = cli("export", "1", "--output", tmp_path / "b.mp4", *video_args(run), "--dpi", "20")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "world_config is not a map" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "b.mp4").exists()
