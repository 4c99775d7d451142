"""MP4 export: decoded back and checked — frames, size, duration, pixels — and bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import FIXTURES, play, recorder_for

from townlet.recording import RecordingIndex
from townlet.recording.palette import agent_rgb
from townlet.video.export import BASE_RATE, VideoOptions, export_from_index, frame_count
from townlet.video.render import FrameRenderer, frame_size

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    recorder = recorder_for(run, periodic=1)
    for episode in range(3):
        play(recorder, episode, reward=1.0 + episode, steps=20)
    recorder.close()
    return run


def decode(path: Path) -> tuple[list[np.ndarray], av.video.stream.VideoStream, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        duration = (
            float(stream.duration * stream.time_base)
            if stream.duration
            else float(container.duration / 1e6)
        )
        return frames, stream, duration


def test_frame_count_size_duration_and_codec(run, tmp_path):
    index = RecordingIndex.for_run(run, create=False)
    options = VideoOptions(fps=10, speed=2.0, dpi=40)
    result = export_from_index(index, 1, tmp_path / "e1.mp4", options)
    frames, stream, duration = decode(tmp_path / "e1.mp4")
    expected = frame_count(20, 10, 2.0)
    assert expected == 20 * 10 / (BASE_RATE * 2.0) == 20
    assert len(frames) == result["frames"] == expected
    assert (stream.width, stream.height) == (640, 360) and stream.codec_context.name == "h264"
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert duration == pytest.approx(expected / 10, abs=0.15)
    export_from_index(index, 1, tmp_path / "hd.mp4", VideoOptions(fps=5, preset="1080p", end=4))
    frames, stream, _ = decode(tmp_path / "hd.mp4")
    assert (stream.width, stream.height) == (1920, 1080) and len(frames) == 4
    assert frame_size("1440p") == (2560, 1440)


def test_an_agents_colour_is_where_the_recording_puts_it(run, tmp_path):
    index = RecordingIndex.for_run(run, create=False)
    episode = index.load(2)
    options = VideoOptions(fps=5, speed=1.0, dpi=60)  # one frame per step
    export_from_index(index, 2, tmp_path / "e2.mp4", options)
    frames, _, _ = decode(tmp_path / "e2.mp4")
    renderer = FrameRenderer(episode, frame_size(dpi=60))
    for step in (3, 10):
        for agent in range(2):
            x, y = episode.columns["positions"][step, agent]
            cx, cy = renderer.cell_center(int(x), int(y))
            pixel = frames[step][cy, cx].astype(int)
            assert np.abs(pixel - np.array(agent_rgb(agent))).max() < 40, (step, agent, pixel)


def test_version_one_recordings_export(tmp_path):
    index = RecordingIndex(FIXTURES / "metrics.db", FIXTURES / "recordings", create=False)
    result = export_from_index(index, 3, tmp_path / "v1.mp4", VideoOptions(fps=5, dpi=40, end=30))
    frames, stream, _ = decode(tmp_path / "v1.mp4")
    assert len(frames) == result["frames"] == 30 and stream.width == 640


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "townlet.recording", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_input_is_a_clear_error_with_no_partial_file(run, tmp_path):
    common = [
        "--database",
        run / "recordings.db",
        "--recordings",
        run / "recordings",
        "--dpi",
        "20",
    ]
    unknown = cli("export", "424242", "--output", tmp_path / "u.mp4", *common)
    assert unknown.returncode == 2 and "episode 424242: not in the index" in unknown.stderr
    assert "recorded: " in unknown.stderr, "the ids that exist are listed"
    nowhere = cli("export", "0", "--output", tmp_path / "missing" / "x.mp4", *common)
    assert nowhere.returncode == 2 and "does not exist" in nowhere.stderr
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    if not __import__("os").access(readonly, __import__("os").W_OK):  # root can write anywhere
        locked = cli("export", "0", "--output", readonly / "x.mp4", *common)
        assert locked.returncode == 2 and "not writable" in locked.stderr
    bad_speed = cli("export", "0", "--output", tmp_path / "s.mp4", "--speed", "0", *common)
    assert bad_speed.returncode == 2 and "speed must be a positive number" in bad_speed.stderr
    assert not [p for p in tmp_path.rglob("*.mp4")], "no partial MP4 left behind"


def test_batch_continues_past_a_corrupt_episode_and_reports_it(run, tmp_path):
    copy = tmp_path / "run"
    import shutil

    shutil.copytree(run, copy)
    (copy / "recordings" / "episode_000001.msgpack.lz4").write_bytes(b"corrupt")
    out = tmp_path / "videos"
    done = cli(
        "batch",
        "--output-dir",
        out,
        "--database",
        copy / "recordings.db",
        "--recordings",
        copy / "recordings",
        "--dpi",
        "20",
        "--fps",
        "5",
        "--progress-every",
        "0",
    )
    assert done.returncode == 1
    assert "episode 1: not an LZ4 frame" in done.stderr and "failed: 1" in done.stdout
    # without a terminal: a line per exported episode, and plain progress lines while drawing
    assert "[1/3] wrote" in done.stdout and "[3/3] wrote" in done.stdout, done.stdout
    assert "episode 0: frame 1/" in done.stderr and "frames/s, about" in done.stderr
    assert sorted(p.name for p in out.glob("*")) == ["episode_000000.mp4", "episode_000002.mp4"]


@pytest.mark.slow
def test_export_entry_point_for_a_run_directory(run, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "experiments/export.py",
            f"run_dir={run}",
            "episode_id=0",
            f"output={tmp_path / 'e0.mp4'}",
            "dpi=20",
            "fps=5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    frames, _, _ = decode(tmp_path / "e0.mp4")
    assert len(frames) == 20
    typo = subprocess.run(
        [sys.executable, "experiments/export.py", f"run_dir={run}", "episode_id=0", "fsp=5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert typo.returncode != 0 and "fsp" in typo.stderr


def test_renderer_needs_no_world_and_draws_static_layers_once(run):
    episode = RecordingIndex.for_run(run, create=False).load(0)
    renderer = FrameRenderer(episode, frame_size(dpi=30), style="light")
    first, again = renderer.render(0), renderer.render(0)
    assert first.shape == (270, 480, 3) and np.array_equal(first, again)
    assert not np.array_equal(renderer.render(0), renderer.render(5)), "agents move between steps"
    torch.manual_seed(0)


def test_frames_show_chats_and_closed_affordances(tmp_path):
    from townlet.capture import capture
    from townlet.scenarios import load_config
    from townlet.video.render import CHAT_BAD, CHAT_OK, CLOSED

    def renderer_for(scenario):
        capture(load_config([f"scenario={scenario}", "capture.record=true"]), tmp_path / scenario)
        episode = RecordingIndex.for_run(tmp_path / scenario, create=False).load(0)
        return episode, FrameRenderer(episode, frame_size("1080p"))

    episode, renderer = renderer_for("evening_chat")
    agents = list(episode.header["agent_ids"])
    frame = renderer.render(2)  # the step whose transition held both chats
    for a, b, colour in (("alice", "bob", CHAT_OK), ("carol", "dave", CHAT_BAD)):
        ends = [
            renderer.cell_center(*episode.columns["positions"][2, agents.index(n)]) for n in (a, b)
        ]
        x, y = (ends[0][0] + ends[1][0]) // 2, (ends[0][1] + ends[1][1]) // 2
        assert tuple(frame[y, x]) == colour, (a, b, frame[y, x])
    assert tuple(renderer.render(0)[y, x]) != CHAT_BAD, "no chat at step 0"

    episode, renderer = renderer_for("utility_outage")
    box = renderer.cell_box(6, 0)  # the shower
    corner = (box[3] - renderer.cell // 5, box[2] - renderer.cell // 5)
    assert tuple(renderer.render(5)[corner]) == CLOSED
    assert tuple(renderer.render(20)[corner]) != CLOSED


def test_frames_show_rivals_shift_states_and_the_chosen_agents_meters(tmp_path):
    from townlet.capture import capture
    from townlet.scenarios import load_config
    from townlet.video.export import ExportError, export_episode
    from townlet.video.render import RIVAL

    capture(load_config(["scenario=evening_chat", "capture.record=true"]), tmp_path / "chat")
    episode = RecordingIndex.for_run(tmp_path / "chat", create=False).load(0)
    agents = list(episode.header["agent_ids"])
    renderer = FrameRenderer(episode, frame_size("1080p"))
    last = episode.steps - 1
    frame = renderer.render(last)
    ends = [
        renderer.cell_center(*episode.columns["positions"][last, agents.index(n)])
        for n in ("carol", "dave")
    ]
    line = [
        tuple(
            frame[
                int(ends[0][1] + (ends[1][1] - ends[0][1]) * f),
                int(ends[0][0] + (ends[1][0] - ends[0][0]) * f),
            ]
        )
        for f in np.linspace(0.3, 0.7, 21)
    ]
    assert RIVAL in line, "carol and dave are rivals above the avoid threshold"
    # the chart draws the chosen agent's meters: carol's social fell after her failed chat,
    # alice's rose, so the two charts differ
    carol = FrameRenderer(episode, frame_size("1080p"), focus="carol").render(last)
    assert not np.array_equal(carol, frame), "a different agent's meters are charted"
    with pytest.raises(ExportError, match="agent 'zed' is not in episode 0"):
        export_episode(episode, tmp_path / "x.mp4", VideoOptions(agent="zed"))
    assert not (tmp_path / "x.mp4").exists()

    capture(load_config(["scenario=late_help", "capture.record=true"]), tmp_path / "help")
    late = RecordingIndex.for_run(tmp_path / "help", create=False).load(0)
    said = {
        FrameRenderer(late, frame_size(dpi=30))._situation(t, a)
        for t in range(late.steps)
        for a in range(len(late.header["agent_ids"]))
    }
    assert any("at work (late)" in text for text in said), said


def test_a_version_one_frame_draws_no_clock_it_does_not_have():
    from PIL import Image, ImageDraw

    index = RecordingIndex(FIXTURES / "metrics.db", FIXTURES / "recordings", create=False)
    renderer = FrameRenderer(index.load(3), frame_size(dpi=40))
    draw = ImageDraw.Draw(Image.new("RGB", (640, 360)))
    assert renderer._time_bar(draw, 0, 100, 0) == 100, "no time-of-day bar, not 00:00"
    assert "progress" not in renderer._situation(0, 0)
