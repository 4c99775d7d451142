"""Hostile checkpoints (issue 27 item 5): a weights file of the wrong structure is one
CheckpointError (the server's error reply) and a network shape the weights do not have is
refused before any network of that size is built."""

from __future__ import annotations

import time

import pytest
import torch
from conftest import tiny_world

from townlet.policy.checkpoint import CheckpointError, load_policy, names_of, save_checkpoint
from townlet.policy.network import ActorCritic


def valid_payload(world) -> dict:
    obs = world.observe()
    net = ActorCritic(
        obs.map_codes.shape[-1], obs.features.shape[-1], len(world.names.actions), 8, 2
    )
    return {"names": names_of(world), "network_shape": net.shape, "model": net.state_dict()}


def broken(payload: dict, case: str) -> object:
    if case == "no keys":
        return {}
    if case == "a list":
        return [payload]
    if case == "no names":
        return {k: v for k, v in payload.items() if k != "names"}
    if case == "names as a string":
        return {**payload, "names": "agents"}
    if case == "negative hidden size":
        return {**payload, "network_shape": {**payload["network_shape"], "hidden": -4}}
    if case == "an empty model":
        return {**payload, "model": {}}
    if case == "a string format version":
        return {**payload, "format_version": "2"}
    if case == "a shape as a list":
        return {**payload, "network_shape": [8]}
    if case == "weights of another shape":
        return {**payload, "network_shape": {**payload["network_shape"], "hidden": 6000}}
    raise AssertionError(case)


CASES = [
    "no keys",
    "a list",
    "no names",
    "names as a string",
    "negative hidden size",
    "an empty model",
    "a string format version",
    "a shape as a list",
    "weights of another shape",
]


@pytest.mark.parametrize("case", CASES)
def test_a_checkpoint_of_the_wrong_structure_is_one_checkpoint_error(tmp_path, case):
    world = tiny_world()
    path = tmp_path / "hostile.pt"
    payload = broken(valid_payload(world), case)
    if case in ("a list", "a string format version"):
        path.write_bytes(b"")
        torch.save(payload, path)
    else:
        save_checkpoint(path, payload)
    started = time.perf_counter()
    with pytest.raises(CheckpointError) as caught:
        load_policy(path, world)
    assert time.perf_counter() - started < 2.0, "refused before building a network of that size"
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_a_valid_checkpoint_still_loads(tmp_path):
    world = tiny_world()
    payload = valid_payload(world)
    save_checkpoint(tmp_path / "ok.pt", payload)
    net, _ = load_policy(tmp_path / "ok.pt", world)
    for key, value in payload["model"].items():
        assert torch.equal(net.state_dict()[key], value), key
