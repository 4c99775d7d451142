"""Where each recorded agent stands beyond its tile: queue places in serving order, shift
states, relationships; what the viewer's agent focus shows, read from real captures."""

from __future__ import annotations

from townlet.capture import capture
from townlet.recording.format import Episode
from townlet.recording.index import RecordingIndex
from townlet.recording.situations import queue_positions, relations, shift_states
from townlet.scenarios import load_config
from townlet.serve.frames import EpisodeFrames


def recorded(tmp_path, scenario: str) -> Episode:
    result = capture(load_config([f"scenario={scenario}", "capture.record=true"]), tmp_path)
    assert all(r.ok for r in result.expectations)
    return RecordingIndex.for_run(tmp_path).load(0)


def test_queue_places_follow_the_order_agents_joined(tmp_path):
    episode = recorded(tmp_path, "queue_conflict")
    places = queue_positions(episode)
    agents = episode.header["agent_ids"]
    queued_steps = [t for t, row in enumerate(places) if sum(p is not None for p in row) >= 2]
    assert queued_steps, "two agents queue behind the shower's first user"
    t = queued_steps[0]
    seen = sorted((p[1], p[2]) for p in places[t] if p)
    assert seen == [(1, 2), (2, 2)], seen
    # whoever joined first is first: it queued at an earlier step than the other, or the same
    first = next(a for a, p in enumerate(places[t]) if p and p[1] == 1)
    second = next(a for a, p in enumerate(places[t]) if p and p[1] == 2)
    column = episode.columns["queued"]
    joined = {
        a: min(s for s in range(t + 1) if all(column[u, a] >= 0 for u in range(s, t + 1)))
        for a in (first, second)
    }
    assert joined[first] <= joined[second]
    message = EpisodeFrames(episode, "run").message(t)
    shower = next(a for a in message["grid"]["affordances"] if a["name"] == "shower")
    assert shower["queue"] == [agents[first], agents[second]], "listed in serving order"
    me = next(a for a in message["grid"]["agents"] if a["id"] == agents[second])
    assert me["queue"] == {"at": "shower", "place": 2, "of": 2}


def test_shift_states_name_on_time_late_and_off_duty(tmp_path):
    episode = recorded(tmp_path, "late_help")
    states = shift_states(episode)
    agents = episode.header["agent_ids"]
    seen = {agents[a]: {row[a] for row in states} for a in range(len(agents))}
    assert any("at work (on time)" in s for s in seen.values()), seen
    assert any("at work (late)" in s for s in seen.values()), seen
    late = next(a for a, s in seen.items() if "at work (late)" in s)
    assert "missing" in seen[late], "past its grace and not there: missing, before it arrives"
    frames = EpisodeFrames(episode, "run")
    last = frames.message(episode.steps - 1)
    assert {a["id"]: a["shift"] for a in last["grid"]["agents"]}[late] == states[-1][
        agents.index(late)
    ]


def test_relations_list_friends_and_rivals_and_the_viewer_gets_them(tmp_path):
    episode = recorded(tmp_path, "evening_chat")
    steps = relations(episode)
    after = steps[-1]
    friends = {other: (f, r) for other, f, r in after["alice"]}
    assert friends["bob"][0] > 0.5, "the friends chatted: familiarity high"
    rivals = {other: (f, r) for other, f, r in after["carol"]}
    threshold = episode.header["world_config"]["rivalry"]["avoid_threshold"]
    assert rivals["dave"][1] >= threshold, "the rivals' chat failed: rivalry above avoid"
    frames = EpisodeFrames(episode, "run")
    assert frames.message(episode.steps - 1)["relations"]["carol"] == after["carol"]
    assert frames.avoid_threshold == threshold


def test_a_recording_without_the_columns_has_no_situation_rather_than_zeros(tmp_path):
    episode = recorded(tmp_path, "evening_chat")
    bare = {
        k: v
        for k, v in episode.columns.items()
        if k not in ("queued", "rivalry", "familiarity", "time_of_day", "interaction_progress")
    }
    stripped = Episode(episode.header, bare)
    assert queue_positions(stripped) is None and relations(stripped) is None
    assert shift_states(stripped) is None
    message = EpisodeFrames(stripped, "run").message(0)
    assert "relations" not in message and "interaction_progress" not in message
    assert all("shift" not in a and "queue" not in a for a in message["grid"]["agents"])


def test_queue_joins_are_markers_and_jobs_are_named(tmp_path):
    episode = recorded(tmp_path / "queue", "queue_conflict")
    frames = EpisodeFrames(episode, "run")
    joins = [m for m in frames.series()["markers"] if m["kind"] == "queue_join"]
    assert len(joins) >= 2 and {m["at"] for m in joins} == {"shower"}, joins
    steps = [m["step"] for m in frames.series()["markers"]]
    assert steps == sorted(steps), "markers in step order (the event list reads them so)"
    work = recorded(tmp_path / "work", "late_help")
    agents = {a["id"]: a for a in EpisodeFrames(work, "run").message(0)["grid"]["agents"]}
    jobs = {a: agent.get("job") for a, agent in agents.items()}
    assert set(jobs.values()) - {None}, jobs


def test_the_viewer_and_the_video_word_every_event_the_same(tmp_path):
    """The page and the MP4 renderer each worded the events, and disagreed (a takeover, a
    chat's quality, completions and queue joins); both now show the server's one text."""
    from townlet.video.render import describe_event

    episode = recorded(tmp_path, "evening_chat")
    frames = EpisodeFrames(episode, "run")
    markers = frames.series()["markers"]
    kinds = {m["kind"] for m in markers}
    assert {"chat", "completed", "queue_join"} & kinds
    for marker in markers:
        assert marker["text"] == describe_event(marker)
    chat = next(m for m in markers if m["kind"] == "chat")
    assert f"(quality {chat['quality']:.2f})" in chat["text"]
    from townlet.serve.server import STATIC

    app = (STATIC / "app.js").read_text()
    assert "arrived at work on time" not in app, "the page has no wording of its own"
