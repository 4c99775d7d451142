"""Social life, mechanic by mechanic: chats (who, how well, what follows), the chat mask,
shared meals, familiarity decay and view, late help, shift takeovers, utility outages, and the
counters telemetry reads from them."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import A, act, make_world, play, recorder_for

from townlet.capture import capture
from townlet.config.errors import ConfigError
from townlet.policy.train import train
from townlet.recording.events import episode_events
from townlet.recording.index import RecordingIndex
from townlet.scenarios import load_config
from townlet.serve.frames import EpisodeFrames
from townlet.util.event_codes import ChatEvent


def room(agents, relationships=(), width=6, height=1, affordances=(), world=None):
    scenario = {
        "width": width,
        "height": height,
        "start_hour": 18.0,
        "agents": agents,
        "relationships": list(relationships),
        "affordances": list(affordances),
    }
    return make_world(scenario, world)


def social(world):
    return world.meter("social")[0]


def test_a_chat_pairs_the_best_known_neighbour_and_follows_its_quality():
    world = room(
        [
            {"id": "ann", "pos": [1, 0], "meters": {"social": 0.4}},
            {"id": "ben", "pos": [2, 0], "meters": {"social": 0.4}},
            {"id": "cat", "pos": [0, 0], "meters": {"social": 0.4}},
        ],
        [{"a": "ann", "b": "ben", "familiarity": 0.5}],
    )
    before = social(world).clone()
    result = act(world, A.INTERACT, A.WAIT, A.WAIT)
    assert int(result.events.chat[0, 0]) == ChatEvent.SUCCESS
    # base 0.4 + 0.6 x 0.5 familiarity + 0.3 x 0.6 need = 0.88
    assert float(result.events.chat_quality[0, 0]) == pytest.approx(0.88, abs=1e-5)
    gained = social(world) - before
    decay = world.tunables.decay[world.names.meters.index("social")]
    assert float(gained[0]) == pytest.approx(0.2 * 0.88 - float(decay), abs=1e-5)
    assert float(gained[1]) == pytest.approx(0.2 * 0.88 - float(decay), abs=1e-5), "ben too"
    assert float(gained[2]) == pytest.approx(-float(decay), abs=1e-6), "cat was not chosen"
    familiarity = world.state.familiarity[0]
    assert float(familiarity[0, 1]) == float(familiarity[1, 0]) > 0.5 + 0.1
    assert int(result.events.chat[0, 1]) == ChatEvent.NONE, "only the starter's chat counts"


def test_rivals_fail_and_grow_more_rivalrous_strangers_depend_on_need():
    world = room(
        [
            {"id": "dan", "pos": [0, 0], "meters": {"social": 0.4}},
            {"id": "eva", "pos": [1, 0], "meters": {"social": 0.4}},
            {"id": "fay", "pos": [4, 0], "meters": {"social": 1.0}},
            {"id": "gus", "pos": [5, 0], "meters": {"social": 1.0}},
        ],
        [{"a": "dan", "b": "eva", "rivalry": 0.5}],
    )
    result = act(world, A.INTERACT, A.WAIT, A.INTERACT, A.WAIT)
    assert int(result.events.chat[0, 0]) == ChatEvent.FAILURE
    rivalry = world.state.rivalry[0]
    assert float(rivalry[0, 1]) > 0.5 and float(rivalry[0, 1]) == float(rivalry[1, 0])
    # strangers with no social need: quality 0.4 < 0.5, a failure
    assert int(result.events.chat[0, 2]) == ChatEvent.FAILURE
    lonely = room(
        [
            {"id": "hal", "pos": [0, 0], "meters": {"social": 0.2}},
            {"id": "ida", "pos": [1, 0], "meters": {"social": 0.2}},
        ]
    )
    assert int(act(lonely, A.INTERACT, A.WAIT).events.chat[0, 0]) == ChatEvent.SUCCESS


def test_interact_is_allowed_next_to_someone_and_uses_an_affordance_first():
    world = room(
        [{"id": "jo", "pos": [0, 0]}, {"id": "kit", "pos": [3, 0]}],
        affordances=[{"name": "park", "type": "Park", "pos": [0, 0]}],
    )
    mask = world.observe().action_mask[0, :, A.INTERACT]
    assert bool(mask[0]) and not bool(mask[1]), "the park, yes; nothing and nobody near kit"
    act(world, A.WAIT, A.LEFT)
    act(world, A.WAIT, A.LEFT)
    assert bool(world.observe().action_mask[0, 1, A.INTERACT]), "kit is next to jo now"
    result = act(world, A.INTERACT, A.WAIT)
    assert int(result.events.started[0, 0]) >= 0, "on the park tile INTERACT uses the park"
    assert int(result.events.chat[0, 0]) == ChatEvent.NONE
    lone = room([{"id": "solo", "pos": [2, 0]}])
    assert not bool(lone.observe().action_mask[0, 0, A.INTERACT])


def test_a_pair_chats_once_per_cooldown_and_the_mask_says_so():
    """The default town's PPO learned to chat every tick beside a neighbour (49 chats per
    agent-day, late to half its shifts): a pair now waits `chat_cooldown_ticks` between chats,
    and INTERACT is masked while nobody near is free to talk."""
    world = room(
        [
            {"id": "ann", "pos": [1, 0], "meters": {"social": 0.2}},
            {"id": "ben", "pos": [2, 0], "meters": {"social": 0.2}},
            {"id": "cat", "pos": [5, 0], "meters": {"social": 0.2}},
        ],
        [{"a": "ann", "b": "ben", "familiarity": 0.5}],
        world={"social": {"chat_cooldown_ticks": 3}},
    )
    assert int(act(world, A.INTERACT, A.WAIT, A.WAIT).events.chat[0, 0]) == ChatEvent.SUCCESS
    mask = world.observe().action_mask[0, :, A.INTERACT]
    assert not bool(mask[0]) and not bool(mask[1]), "both wait: the chat was theirs"
    second = act(world, A.INTERACT, A.INTERACT, A.WAIT)  # unmasked callers still get nothing
    assert second.events.chat[0].tolist() == [ChatEvent.NONE] * 3
    act(world, A.WAIT, A.WAIT, A.WAIT)
    assert bool(world.observe().action_mask[0, 0, A.INTERACT]), "three ticks on, free again"
    assert int(act(world, A.WAIT, A.INTERACT, A.WAIT).events.chat[0, 1]) == ChatEvent.SUCCESS
    # a third agent is not held up by the pair's cooldown: cat walks up and chats with ben
    act(world, A.WAIT, A.WAIT, A.LEFT)
    act(world, A.WAIT, A.WAIT, A.LEFT)
    result = act(world, A.WAIT, A.WAIT, A.INTERACT)
    assert int(result.events.chat[0, 2]) == ChatEvent.SUCCESS
    assert int(result.events.chat_partner[0, 2]) == 1


def test_chat_cooldown_below_zero_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="world.social.chat_cooldown_ticks"):
        room([{"id": "ann", "pos": [0, 0]}], world={"social": {"chat_cooldown_ticks": -1}})


def test_shared_meals_and_familiarity_decay_and_view():
    world = make_world(
        {
            "width": 4,
            "height": 1,
            "affordances": [{"name": "cafe", "type": "Cafe", "pos": [0, 0]}],
            "agents": [{"id": "lu", "pos": [0, 0]}, {"id": "mo", "pos": [0, 0]}],
            "start_hour": 12.0,
        }
    )
    act(world, A.INTERACT, A.INTERACT)  # both start the same 3-tick meal
    act(world, A.WAIT, A.WAIT)
    act(world, A.WAIT, A.WAIT)
    done = act(world, A.WAIT, A.WAIT)
    assert (done.events.completed[0] >= 0).all()
    after = float(world.state.familiarity[0, 0, 1])
    assert after == pytest.approx(0.05 * (1 - 0.001), abs=1e-6), "a shared meal, one decay"
    features = world.observe().features[0]
    column = world.feature_index["familiarity_max"]
    assert float(features[0, column]) == pytest.approx(after, abs=1e-6)
    act(world, A.WAIT, A.WAIT)
    assert float(world.state.familiarity[0, 0, 1]) == pytest.approx(after * (1 - 0.001), rel=1e-5)


def late_help_run(tmp_path, *overrides: str):
    result = capture(
        load_config(["scenario=late_help", *overrides]), tmp_path / "_".join(overrides or ["x"])
    )
    return {name: metrics for name, metrics in result.metrics.items()}


def test_a_covered_late_worker_pays_less_than_an_uncovered_one(tmp_path):
    helped = late_help_run(tmp_path)
    alone = late_help_run(tmp_path, "world.social.help_discount=0")
    lou = next(k for k in helped if "_lou_" in k)
    assert helped[lou]["late_help_received"] == 1
    assert helped[lou]["shift_penalty"] < alone[lou]["shift_penalty"] - 0.2
    eve = next(k for k in helped if "_eve_" in k)
    assert helped[eve]["help_reward"] == pytest.approx(0.1)


def test_a_coworker_not_at_work_takes_over_nothing(tmp_path):
    result = capture(
        load_config(
            ["scenario=shift_takeover", "scenario.agents.0.script=[{do: wait, ticks: 40}]"]
        ),
        tmp_path,
    )
    assert all(m["shift_takeovers"] == 0 for m in result.metrics.values())


def test_an_outage_closes_the_shower_for_its_window_and_is_counted():
    world = make_world(
        {
            "width": 3,
            "height": 1,
            "start_hour": 9.0,
            "affordances": [{"name": "shower", "type": "Shower", "pos": [0, 0]}],
            "agents": [{"id": "ned", "pos": [0, 0], "meters": {"money": 0.5}}],
            "outages": [{"utility": "water", "start_hour": 9.2, "end_hour": 9.5}],
        }
    )
    column = world.feature_index["outage_water"]
    seen, allowed, starts = [], [], 0
    for _ in range(7):
        obs = world.observe()
        seen.append(float(obs.features[0, 0, column]))
        allowed.append(bool(obs.action_mask[0, 0, A.INTERACT]))
        starts += int(act(world, A.WAIT).events.outage_starts[0])
    # ticks of day 90..96: 9.2 h is tick 92, 9.5 h tick 95 (10 ticks an hour)
    assert seen == [0, 0, 1, 1, 1, 0, 0]
    assert allowed == [True, True, False, False, False, True, True]
    assert starts == 1


def test_unknown_names_in_relationships_and_outages_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"relationships\[0\]: unknown agent 'zed'"):
        room([{"id": "a", "pos": [0, 0]}], [{"a": "a", "b": "zed", "familiarity": 0.5}])
    with pytest.raises(ConfigError, match=r"outages\[0\].utility: unknown utility 'gas'"):
        make_world(
            {
                "width": 2,
                "height": 1,
                "agents": [{"id": "a", "pos": [0, 0]}],
                "outages": [{"utility": "gas", "start_hour": 1, "end_hour": 2}],
            }
        )


def recorded(tmp_path, scenario):
    """A scenario's capture with `capture.record=true`: its one recorded episode."""
    result = capture(load_config([f"scenario={scenario}", "capture.record=true"]), tmp_path)
    assert all(r.ok for r in result.expectations)
    return RecordingIndex.for_run(tmp_path).load(0)


def test_recordings_carry_chats_help_and_outages_and_the_viewer_names_them(tmp_path):
    chat = recorded(tmp_path / "chat", "evening_chat")
    assert chat.metadata["recording_reasons"] == ["capture"]
    assert "action_probs" not in chat.columns, "a script has no probabilities to record"
    chats = [(t, e) for t, events in enumerate(episode_events(chat)) for e in events]
    chats = [(t, e["agent"], e["with"], e["success"]) for t, e in chats if e["kind"] == "chat"]
    assert (2, "alice", "bob", True) in chats, chats  # friends after work
    assert (2, "carol", "dave", False) in chats, chats  # rivals
    message = EpisodeFrames(chat, "run").message(2)
    assert {"agent": "alice", "kind": "chat", "with": "bob", "success": True}.items() <= (
        message["events"][0].items()
    )
    assert message["outages"] == []  # recorded, and nothing was out

    help_ = recorded(tmp_path / "help", "late_help")
    kinds = {e["kind"] for events in episode_events(help_) for e in events}
    assert {"late_help", "late", "on_time"} <= kinds, kinds
    takeover = recorded(tmp_path / "takeover", "shift_takeover")
    assert any(e["kind"] == "takeover" for events in episode_events(takeover) for e in events)

    outage = recorded(tmp_path / "outage", "utility_outage")
    assert outage.header["utilities"] == {"water": ["Shower"]}
    frames = EpisodeFrames(outage, "run")
    out = [t for t in range(outage.steps) if frames.message(t)["outages"] == ["water"]]
    assert out == list(range(2, 15)), out  # 9:12 to 10:30 from a 9:00 start, 10 ticks an hour
    shower = [a for a in frames.message(5)["grid"]["affordances"] if a["type"] == "Shower"]
    assert shower[0]["closed"] and not [
        a for a in frames.message(20)["grid"]["affordances"] if a.get("closed")
    ]


def test_the_viewer_marks_agents_left_out_or_fainted_as_inactive(tmp_path):
    from townlet.recording.format import Episode, pack_array, unpack_array

    episode = recorded(tmp_path, "evening_chat")
    fainted = episode.columns["fainted"].copy()
    fainted[3, 0] = True  # alice faints in step 3's transition
    start = {**episode.header["start"], "state": dict(episode.header["start"]["state"])}
    alive = unpack_array(start["state"]["alive"])
    alive[0, 1] = False  # bob was left out of the episode
    start["state"]["alive"] = pack_array(alive)
    changed = Episode({**episode.header, "start": start}, {**episode.columns, "fainted": fainted})
    frames = EpisodeFrames(changed, "run")
    active = [{a["id"]: a["active"] for a in frames.message(t)["grid"]["agents"]} for t in (3, 4)]
    assert active[0] == {"alice": True, "bob": False, "carol": True, "dave": True}
    assert active[1] == {"alice": False, "bob": False, "carol": True, "dave": True}


def test_a_recording_without_event_columns_shows_no_events_rather_than_none_happening(tmp_path):
    recorder = recorder_for(tmp_path, periodic=1)
    play(recorder, 0, reward=1.0)  # hands over no event columns
    recorder.close()
    episode = RecordingIndex.for_run(tmp_path).load(0)
    assert "completed" not in episode.columns and "chat" not in episode.columns
    message = EpisodeFrames(episode, "run").message(0)
    assert "events" not in message and "outages" not in message


@pytest.mark.slow
def test_a_town_training_run_counts_real_chats(tmp_path):
    overrides = [
        "scenario=town",
        "ppo.num_envs=8",
        "train.total_ticks=128",
        "train.anneal=[]",
        "train.eval_episodes=2",
        "train.progress=false",
    ]
    train(load_config(overrides), tmp_path)
    records = [json.loads(x) for x in (tmp_path / "telemetry" / "ppo.jsonl").read_text().split()]
    assert sum(r["chat_success_events"] + r["chat_failure_events"] for r in records) > 0
    chatted = [r for r in records if r["chat_success_events"] + r["chat_failure_events"]]
    assert all(0 < r["chat_quality_mean"] <= 1 for r in chatted)
    assert all("sleep_complete_events" in r and "utility_outage_events" in r for r in records)
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    assert "chats_per_agent_day" in evaluation["random"]["behaviour"]
    assert torch.isfinite(torch.tensor(evaluation["random"]["behaviour"]["chats_per_agent_day"]))


def test_chats_on_the_rows_of_the_asking_envs_equal_chats_over_every_env():
    """The world runs a tick's chats on the rows of the envs where someone wants one; every
    chat, relation and gain is the same as running them over all envs."""
    from townlet.scenarios import build_world
    from townlet.world.social import ChatRows, chat, chat_partners, chats
    from townlet.world.windows import pair_offsets

    world = build_world(load_config(["scenario=town"]), num_envs=6, seed=3)
    state, layout, config = world.state, world.layout, world.config.social
    generator = torch.Generator().manual_seed(0)
    # crowd the agents onto a few tiles so that most can chat, and give them a history
    tiles = layout.walkable[:-1].nonzero().squeeze(1)[:3]
    state.pos = tiles[torch.randint(0, 3, state.pos.shape, generator=generator)]
    state.familiarity = torch.rand(state.familiarity.shape, generator=generator)
    state.rivalry = torch.rand(state.rivalry.shape, generator=generator) * 0.5
    wants = torch.rand(state.pos.shape, generator=generator) < 0.6
    wants[[1, 4]] = False  # two envs where nobody asks
    need = torch.rand(state.pos.shape, generator=generator)
    offsets = pair_offsets(state, world.observer.windows.origin)

    everywhere = state.clone()
    rows = ChatRows.of(everywhere, None)
    near = chat_partners(rows, layout, config, True, offsets)
    expected = chat(rows, config, wants, near, need)
    rows.write_back(everywhere, None)

    got = chats(state, layout, config, wants, need, offsets, True)
    assert (expected.event > 0).sum() >= 3, "the case has chats"
    for name in ("event", "quality", "partner", "social_gain"):
        assert torch.equal(getattr(got, name), getattr(expected, name)), name
    for name in ("familiarity", "rivalry", "last_chat"):
        assert torch.equal(getattr(state, name), getattr(everywhere, name)), name
