"""Trust, files: a recording header or a checkpoint is data. Its config is checked like a
composed one, with hard size limits, before anything is built; no interpolation in it is ever
resolved; a checkpoint's scenario is a name of conf/scenario (issue 27, items 1, 2 and 8)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from omegaconf import OmegaConf
from test_verify import recorded

from townlet.config.errors import ConfigError
from townlet.config.untrusted import config_from_file, refuse_interpolation
from townlet.config.validate import check_memory, training_bytes
from townlet.policy.evaluate import evaluate_checkpoint
from townlet.recording.format import Episode, unpack_array
from townlet.recording.verify import verify_episode, world_at
from townlet.scenarios import load_config
from townlet.scenarios.build import typed


@pytest.fixture(scope="module")
def episode(tmp_path_factory) -> Episode:
    return recorded(tmp_path_factory.mktemp("rec"))


def with_header(episode: Episode, section: str, **changes) -> Episode:
    part = {**episode.header[section], **changes}
    return Episode({**episode.header, section: part}, episode.columns)


def test_a_header_asking_for_a_huge_town_is_refused_before_anything_is_built(episode):
    huge = with_header(episode, "scenario_config", width=3000, height=3000)
    start = time.perf_counter()
    result = verify_episode(huge)
    assert result.verified is False and result.refused, result.line()
    assert "scenario.width" in result.reason and "3000" in result.reason
    with pytest.raises(ValueError, match="scenario.width"):
        world_at(huge, 1)  # what branch_live calls
    many_cells = with_header(episode, "scenario_config", width=1000, height=1000)
    with pytest.raises(ValueError, match="cells"):
        world_at(many_cells, 1)
    assert time.perf_counter() - start < 2.0


def test_interpolations_in_a_header_are_refused_never_resolved(episode, monkeypatch):
    monkeypatch.setenv("TOWNLET_SECRET", "hunter2")
    leaky = with_header(episode, "scenario_config", name="${oc.env:TOWNLET_SECRET}")
    result = verify_episode(leaky)
    assert result.refused and "interpolations are not allowed" in result.reason
    assert "hunter2" not in result.line()
    nested = with_header(episode, "world_config", observation={"window": "${oc.env:X,9}"})
    assert verify_episode(nested).refused
    assert verify_episode(episode).verified  # the honest file still verifies


def test_a_header_with_unknown_keys_wrong_types_or_ranges_names_the_key(episode):
    for section, change, key in (
        ("world_config", {"no_such_key": 1}, "no_such_key"),
        ("world_config", {"ticks_per_day": "many"}, "ticks_per_day"),
        ("world_config", {"observation": {"window": 2001}}, "window"),
        ("scenario_config", {"ticks": 5_000_000}, "scenario.ticks"),
    ):
        result = verify_episode(with_header(episode, section, **change))
        assert result.refused and key in result.reason, (change, result.reason)


def test_a_checkpoint_scenario_is_a_name_from_conf_scenario(tmp_path):
    for hostile in ("../../../../tmp/x/evil", "/etc/passwd", "town/../../x", 7, None):
        path = tmp_path / "evil.pt"
        torch.save({"format_version": 2, "scenario": hostile}, path)
        with pytest.raises(ConfigError, match="scenario"):
            evaluate_checkpoint(path, [], episodes=1, seed=0)


@pytest.mark.parametrize(
    "override, key",
    [
        ("ppo.hidden_size=100000", "ppo.hidden_size"),
        ("world.observation.window=2001", "world.observation.window"),
        ("scenario.width=20000", "scenario.width"),
    ],
)
def test_config_sizes_beyond_the_limits_are_errors_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config([override])


def test_the_memory_estimate_counts_the_network_and_the_grid():
    def needed(*overrides: str) -> int:
        return training_bytes(typed(load_config(list(overrides), check=False)))

    base = needed()
    # the network: ~81 x 4 x 8000 weights, x4 for gradients and Adam's moments
    assert needed("ppo.hidden_size=8000") > base + 2**30
    # the grid's per-cell tables, per env
    assert needed("scenario.width=500", "scenario.height=500") > base + 2**28
    with pytest.raises(ConfigError, match="GiB"):
        check_memory(typed(load_config(["ppo.hidden_size=8000"], check=False)), 4 * 2**30)


config_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@given(world=config_values, scenario=config_values)
def test_any_structure_is_a_clean_config_error_or_a_checked_config(world, scenario):
    try:
        config = config_from_file({"world": world, "scenario": scenario}, "a file")
    except ConfigError as error:
        assert str(error).startswith("a file") and "\n" not in str(error)
    else:
        assert config.scenario.width * config.scenario.height <= 512 * 512


def test_interpolation_is_found_anywhere_in_the_structure():
    with pytest.raises(ConfigError, match=r"a\.b\.1"):
        refuse_interpolation({"b": [1, "x${y}"]}, "a")
    with pytest.raises(ConfigError, match="too deeply"):
        deep: dict = {}
        node = deep
        for _ in range(40):
            node["k"] = {}
            node = node["k"]
        refuse_interpolation(deep, "a")


def test_a_small_file_that_decodes_into_millions_of_objects_is_refused():
    import lz4.frame
    import msgpack

    from townlet.recording.format import MAX_OBJECTS, RecordingError, decode_episode

    # nested empty arrays: one byte of msgpack each, a Python list each once decoded
    arrays = b"\xdc" + (60_000).to_bytes(2, "big") + b"\x90" * 60_000
    payload = (
        b"\x83"  # a map of three: format_version, header, and the bomb
        + msgpack.packb("format_version")
        + msgpack.packb(2)
        + msgpack.packb("header")
        + msgpack.packb({})
        + msgpack.packb("columns")
        + b"\xdd"
        + (MAX_OBJECTS // 60_000 + 2).to_bytes(4, "big")
        + arrays * (MAX_OBJECTS // 60_000 + 2)
    )
    data = lz4.frame.compress(payload)
    assert len(data) < 1_000_000
    start = time.perf_counter()
    with pytest.raises(RecordingError, match="objects"):
        decode_episode(data, "bomb")
    assert time.perf_counter() - start < 10
    one_huge = b"\x81" + msgpack.packb("x") + b"\xdd" + (50_000_000).to_bytes(4, "big")
    with pytest.raises(RecordingError, match="corrupt"):
        decode_episode(lz4.frame.compress(one_huge + b"\x90" * 10), "huge")


@given(data=st.binary(max_size=512))
def test_any_bytes_are_a_clean_recording_error(data):
    from townlet.recording.format import RecordingError, decode_episode

    with pytest.raises(RecordingError):
        decode_episode(data, "fuzz")


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what msgpack can hold
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=16),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@given(
    payload=msgpack_values
    | st.fixed_dictionaries(
        {"format_version": st.sampled_from([1, 2])},
        optional={"header": msgpack_values, "columns": msgpack_values, "steps": msgpack_values},
    )
)
def test_any_msgpack_structure_is_a_recording_or_a_clean_error(payload):
    import lz4.frame
    import msgpack

    from townlet.recording.format import RecordingError, decode_episode

    data = lz4.frame.compress(msgpack.packb(payload, use_bin_type=True))
    try:
        decode_episode(data, "fuzz")
    except RecordingError as error:
        assert str(error).startswith("fuzz")


def spoiled_start(episode: Episode, case: str) -> Episode:
    start = {**episode.header["start"], "state": dict(episode.header["start"]["state"])}
    state = start["state"]
    if case == "an extra key":
        state["surprise"] = state["pos"]
    elif case == "a missing key":
        del state["meters"]
    elif case == "a wrong shape":
        spec = state["meters"]
        state["meters"] = {**spec, "shape": [int(np.prod(spec["shape"]))]}
    elif case == "a wrong dtype":
        spec = state["pos"]
        state["pos"] = {**spec, "dtype": "float64"}
    elif case == "a position off the grid":
        pos = unpack_array(state["pos"]).copy()
        pos[:] = 10**9
        state["pos"] = {**state["pos"], "data": pos.tobytes()}
    elif case == "not a mapping":
        start["state"] = [1, 2]
    return Episode({**episode.header, "start": start}, episode.columns)


@pytest.mark.parametrize(
    "case",
    [
        "an extra key",
        "a missing key",
        "a wrong shape",
        "a wrong dtype",
        "a position off the grid",
        "not a mapping",
    ],
)
def test_a_start_state_that_does_not_fit_the_world_is_refused(episode, case):
    """Issue 27 item 5: a start state with an extra key closed branch_live with 1011."""
    hostile = spoiled_start(episode, case)
    result = verify_episode(hostile)
    assert result.verified is False and result.refused, result.line()
    assert "start state" in result.reason
    with pytest.raises(ValueError, match="start state"):
        world_at(hostile, 1)  # what branch_live calls


def test_a_files_config_is_checked_once_and_every_caller_owns_its_copy(monkeypatch):
    """The server re-read one run's header config on every branch_live, holding the GIL for
    tens of milliseconds each time while its other clients waited."""
    from townlet.config import untrusted

    composed = OmegaConf.to_container(load_config(["scenario=kitchen_breakfast"]))
    parts = {"world": composed["world"], "scenario": {**composed["scenario"], "width": 9}}
    merges = []
    real_merge = untrusted.OmegaConf.merge
    monkeypatch.setattr(untrusted.OmegaConf, "merge", lambda *a: merges.append(1) or real_merge(*a))
    first = config_from_file(parts, "episode 1 header")
    checking = len(merges)
    second = config_from_file(parts, "episode 2 header")
    assert checking > 0 and len(merges) == checking
    assert first == second and first is not second
    first.scenario.width = 11
    assert config_from_file(parts, "episode 3 header").scenario.width == 9
    bad = {"world": composed["world"], "scenario": {**composed["scenario"], "width": -1}}
    with pytest.raises(ConfigError, match="^episode 4 header: .*width"):
        config_from_file(bad, "episode 4 header")
    refusing = len(merges)
    with pytest.raises(ConfigError, match="^episode 5 header: .*width"):
        config_from_file(bad, "episode 5 header")
    assert refusing > checking and len(merges) == refusing
