"""A week-long episode downstream: its recording names the days and the rent, the viewer's
series has a day axis, videos cut by day, and re-simulation verifies it to its last tick."""

from __future__ import annotations

import numpy as np
import pytest

from townlet.capture import capture
from townlet.recording import RecordingIndex
from townlet.recording.events import day_starts, episode_events
from townlet.recording.format import Episode, episode_problem
from townlet.recording.verify import verify_episode, world_at
from townlet.scenarios import load_config
from townlet.serve.frames import EpisodeFrames
from townlet.video.export import ExportError, day_range


@pytest.fixture(scope="module")
def week_episode(tmp_path_factory) -> Episode:
    folder = tmp_path_factory.mktemp("week")
    capture(load_config(["scenario=town_week", "capture.record=true"]), folder)
    return RecordingIndex.for_run(folder).load(0)


def test_a_week_recording_carries_its_days_and_its_rent(week_episode):
    columns = week_episode.columns
    assert week_episode.steps == 1680 and episode_problem(week_episode) is None
    assert [d for _, d in day_starts(week_episode)] == [1, 2, 3, 4, 5, 6, 0]
    assert day_starts(week_episode)[0][0] == 180  # Monday 06:00 + 18 hours
    rent = [
        e for step in episode_events(week_episode) for e in step if e["kind"].startswith("rent")
    ]
    assert [e["kind"] for e in rent] == ["rent_paid"] * 4
    assert columns["weekday"].dtype == np.uint8


def test_the_viewer_shows_the_weekday_and_a_day_axis(week_episode):
    frames = EpisodeFrames(week_episode, "week")
    assert frames.message(0, "replay")["weekday"] == "mon"
    assert frames.message(6 * 240, "replay")["weekday"] == "sun"
    days = [m for m in frames.series()["markers"] if m["kind"] == "day"]
    assert [m["weekday"] for m in days] == ["tue", "wed", "thu", "fri", "sat", "sun", "mon"]


def test_a_one_day_recording_has_no_days(tmp_path):
    capture(load_config(["scenario=town", "capture.record=true"]), tmp_path)
    episode = RecordingIndex.for_run(tmp_path).load(0)
    assert "weekday" not in episode.columns and "rent" not in episode.columns
    assert "weekday" not in EpisodeFrames(episode, "town").message(0, "replay")


def test_a_video_can_cover_a_range_of_days(week_episode):
    assert day_range(week_episode, "1") == (0, 180)
    assert day_range(week_episode, "2-3") == (180, 660)
    assert day_range(week_episode, "8") == (1620, 1680)  # the last Monday's early hours
    for bad, message in (
        ("9", r"has 8 day\(s\)"),
        ("3-2", "no later"),
        ("two", "a day or a range"),
    ):
        with pytest.raises(ExportError, match=message):
            day_range(week_episode, bad)


def test_a_week_verifies_and_branches_at_any_tick(week_episode):
    result = verify_episode(week_episode)
    assert result.verified and result.steps == 1680, result.line()
    world = world_at(week_episode, 1500)  # Sunday noon: the rent falls due next
    assert int(world.weekday()[0]) == 6 and int(world.time_of_day()[0]) == 120


def test_the_viewer_shows_a_day_off_as_off_duty(week_episode):
    frames = EpisodeFrames(week_episode, "week")
    saturday_ten = 5 * 240 + 40  # Saturday 10:00, in the shifts' hours
    tuesday_ten = 240 + 40
    on_saturday = {a["id"]: a["shift"] for a in frames.message(saturday_ten)["grid"]["agents"]}
    on_tuesday = {a["id"]: a["shift"] for a in frames.message(tuesday_ten)["grid"]["agents"]}
    assert set(on_saturday.values()) == {"off duty"}
    assert set(on_tuesday.values()) == {"at work (on time)"}
