"""Hostile capture folders for behaviour cloning (issue 27 item 9): every malformed manifest,
sidecar or sample is one ReplayError naming its file, before training starts or at the chunk
that holds it; actions of the wrong length no longer train silently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from townlet.capture import capture
from townlet.policy.network import ActorCritic
from townlet.policy.replay import ReplayError, discover, load_chunk
from townlet.scenarios import load_config
from townlet.scenarios.build import typed
from townlet.world import World
from townlet.world.constants import NUM_ACTIONS

SCENARIO = "employment_punctuality"


@pytest.fixture(scope="module")
def captured(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("capture") / "run"
    capture(load_config([f"scenario={SCENARIO}"]), out)
    return out


def world_and_net() -> tuple[World, ActorCritic]:
    config = typed(load_config([f"scenario={SCENARIO}"]))
    world = World(config.world, config.scenario, num_envs=1, seed=0)
    net = ActorCritic(world.layout.window, len(world.names.features), NUM_ACTIONS)
    return world, net


def first_sample(folder: Path) -> tuple[Path, Path]:
    manifest = json.loads((folder / "rollout_sample_manifest.json").read_text())
    row = manifest["samples"][0]
    return folder / row["sample"], folder / row["meta"]


def rewrite_sample(path: Path, **changes) -> None:
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    with path.open("wb") as out:
        np.savez(out, **arrays)


def edit_meta(path: Path, **changes) -> None:
    meta = json.loads(path.read_text())
    meta.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del meta[key]
    path.write_text(json.dumps(meta))


def hostile(folder: Path, case: str) -> str:
    """Spoil `folder` one way; return the name of the file the error must name."""
    manifest = folder / "rollout_sample_manifest.json"
    sample, meta = first_sample(folder)
    if case == "junk manifest":
        manifest.write_text("{not json")
        return manifest.name
    if case == "a manifest that is a number":
        manifest.write_text("7")
        return manifest.name
    if case == "a sample name that is a number":
        manifest.write_text(json.dumps({"samples": [{"sample": 7, "timesteps": 3}]}))
        return manifest.name
    if case == "a missing meta":
        meta.unlink()
        return meta.name
    if case == "a meta without action names":
        edit_meta(meta, action_names=None)
        return meta.name
    if case == "a meta that is a list":
        meta.write_text("[1, 2]")
        return meta.name
    if case == "timesteps that are not a number":
        rows = json.loads(manifest.read_text())
        rows["samples"][0]["timesteps"] = "thirty"
        manifest.write_text(json.dumps(rows))
        return manifest.name
    with np.load(sample) as data:
        t = int(data["actions"].shape[0])
        actions = data["actions"]
        rewards = data["rewards"]
    if case == "a sample without rewards":
        rewrite_sample(sample, rewards=None)
    elif case == "action id 99":
        rewrite_sample(sample, actions=np.full_like(actions, 99))
    elif case == "a map of the wrong shape":
        rewrite_sample(sample, map=np.zeros((t, 2, 5, 5), np.float32))
    elif case == "NaN rewards":
        rewrite_sample(sample, rewards=np.full_like(rewards, np.nan))
    elif case == "actions of the wrong length":
        rewrite_sample(sample, actions=actions[: t // 2])
    elif case == "a sample that is not a zip":
        sample.write_bytes(b"not a zip at all")
    else:
        raise AssertionError(case)
    return sample.name


CASES = [
    "junk manifest",
    "a manifest that is a number",
    "a sample name that is a number",
    "a missing meta",
    "a meta without action names",
    "a meta that is a list",
    "timesteps that are not a number",
    "a sample without rewards",
    "action id 99",
    "a map of the wrong shape",
    "NaN rewards",
    "actions of the wrong length",
    "a sample that is not a zip",
]


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_capture_is_one_replay_error_naming_its_file(captured, tmp_path, case):
    import shutil

    folder = tmp_path / "capture"
    shutil.copytree(captured, folder)
    name = hostile(folder, case)
    world, net = world_and_net()
    with pytest.raises(ReplayError) as caught:
        refs = discover(folder, world)
        load_chunk(refs, world, net, 0.99, 0.95)
    text = str(caught.value)
    assert name in text and "\n" not in text, text


def test_the_untouched_capture_still_loads(captured):
    world, net = world_and_net()
    refs = discover(captured, world)
    chunk = load_chunk(refs, world, net, 0.99, 0.95)
    assert chunk.batch.actions.numel() == sum(r.timesteps for r in refs)


@pytest.mark.parametrize(
    "entry",
    [
        {"sample": "/etc/hostname", "timesteps": 3},
        {"sample": "../outside.npz", "timesteps": 3},
        {"sample": "ok.npz", "meta": "/etc/hostname", "timesteps": 3},
        {"sample": "ok.npz", "meta": "../../meta.json", "timesteps": 3},
    ],
)
def test_a_manifest_cannot_name_a_file_outside_its_folder(captured, tmp_path, entry):
    """An absolute or `..` name was joined as given: a capture could make training read any
    file on the machine."""
    import shutil

    folder = tmp_path / "capture"
    shutil.copytree(captured, folder)
    (folder / "rollout_sample_manifest.json").write_text(json.dumps({"samples": [entry]}))
    world, _ = world_and_net()
    with pytest.raises(ReplayError, match="outside"):
        discover(folder, world)


hostile_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["../x.npz", "/etc/hostname", ".", "", "sample_0.npz"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
row_keys = st.sampled_from(["sample", "meta", "timesteps", "file", "other"])
metric_keys = st.sampled_from(["faints", "on_time_events", "completions.Bed", "contention_events"])


@pytest.fixture(scope="module")
def world_net() -> tuple[World, ActorCritic]:
    return world_and_net()


@settings(max_examples=100)
@given(
    row=st.dictionaries(row_keys, hostile_values, max_size=3),
    metrics=st.dictionaries(metric_keys, hostile_values, max_size=3) | hostile_values,
)
def test_any_manifest_row_and_metrics_load_or_are_one_replay_error(
    captured, world_net, row, metrics
):
    """Whatever a manifest row or the metrics file holds, the capture loads (every file it
    reads inside the folder) or is refused with one ReplayError line; never another error."""
    import shutil
    import tempfile

    first = json.loads((captured / "rollout_sample_manifest.json").read_text())["samples"][0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "capture"
        folder.mkdir()
        for name in (first["sample"], first["meta"]):
            shutil.copy(captured / name, folder / name)
        manifest = {"samples": [{**first, **row}]}
        (folder / "rollout_sample_manifest.json").write_text(json.dumps(manifest))
        metrics_path = folder / "rollout_sample_metrics.json"
        metrics_path.write_text(json.dumps({"samples": {first["sample"]: metrics}}))
        world, net = world_net
        try:
            refs = discover(folder, world)
            load_chunk(refs, world, net, 0.99, 0.95)
        except ReplayError as error:
            assert str(error) and "\n" not in str(error)
        else:
            assert all(ref.path.resolve().is_relative_to(folder.resolve()) for ref in refs)
