"""Checkpoints: weights, optimiser, counters, generator states, curriculum, world state and the
names the network was trained with; written atomically; checked for compatibility on load.

A checkpoint holds only tensors, numbers, strings, lists and dicts, and is always read with
`torch.load(weights_only=True)`: a file handed to any loader (the server, capture, resume,
evaluation) can never run code. Format 1 files (older Townlet) are refused with a clear error."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from townlet.config.validate import MAX_EMBEDDING, MAX_HIDDEN, MAX_WINDOW
from townlet.policy.network import ActorCritic
from townlet.util.atomic import atomic_write_bytes

FORMAT_VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint that is unreadable or belongs to an incompatible configuration."""


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **payload}, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # it names a class or function: never unpickled
        raise CheckpointError(
            f"{path}: not a readable checkpoint (it holds Python objects that are never "
            "unpickled; only tensors, numbers, strings, lists and dicts are loaded)"
        ) from error
    except Exception as error:  # a truncated or foreign file
        first = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({first})") from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a Townlet checkpoint (a {type(data).__name__})")
    version = data.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version < FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} from an older Townlet; this version reads "
            f"format {FORMAT_VERSION} (retrain, or resume with the Townlet that wrote it)"
        )
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: not a Townlet checkpoint of format {FORMAT_VERSION}")
    return data


def check_compatible(path: Path, data: dict[str, Any], names: dict, network_shape: dict) -> None:
    """Fail naming the first difference between the checkpoint and the current config."""
    for key, current in names.items():
        stored = data["names"].get(key) if isinstance(data.get("names"), dict) else None
        if stored != current:
            raise CheckpointError(
                f"{path}: incompatible config: checkpoint {key} {stored} != current {current}"
            )
    if data["network_shape"] != network_shape:
        stored = data["network_shape"]
        raise CheckpointError(
            f"{path}: incompatible network: checkpoint {stored} != current {network_shape}"
        )


# The world's name lists a network depends on: a checkpoint is loaded only where all match.
CHECKPOINT_NAMES = ("meters", "actions", "features", "dense_channels", "affordance_types", "agents")


def names_of(world: Any) -> dict[str, list[str]]:
    """The world's name lists a checkpoint stores and is checked against."""
    return {key: list(getattr(world.names, key)) for key in CHECKPOINT_NAMES}


def load_policy(path: Path, world: Any) -> tuple[Any, dict[str, Any]]:
    """The network a checkpoint holds, checked against `world`, in eval mode, with the
    checkpoint's data (its scenario, epoch, ...). Every reader of weights comes through here.

    The file is data from anywhere: its names, shape and weights are checked against a network
    built on the meta device (no memory, no initialisation) before the real one is allocated,
    so a shape the weights do not have, or any other structure, is one CheckpointError."""
    path = Path(path)
    data = load_checkpoint(path)
    names, shape, model = data.get("names"), data.get("network_shape"), data.get("model")
    if not isinstance(names, dict) or not isinstance(shape, dict) or not isinstance(model, dict):
        raise CheckpointError(f"{path}: not a policy checkpoint (names, network_shape, model)")
    if set(shape) != set(SHAPE_LIMITS) or not all(
        isinstance(shape[k], int) and not isinstance(shape[k], bool) and 1 <= shape[k] <= most
        for k, most in SHAPE_LIMITS.items()
    ):
        limits = ", ".join(f"{k} in [1, {most}]" for k, most in SHAPE_LIMITS.items())
        raise CheckpointError(f"{path}: network_shape must hold integers {limits}")
    with torch.device("meta"):
        expected = ActorCritic(**shape)
    check_compatible(path, data, names_of(world), expected.shape)
    wanted = {key: tuple(value.shape) for key, value in expected.state_dict().items()}
    given = {
        key: tuple(value.shape) if isinstance(value, torch.Tensor) else None
        for key, value in model.items()
    }
    if given != wanted:
        raise CheckpointError(f"{path}: the weights do not fit the network shape {shape}")
    net = expected.to_empty(device="cpu")
    net.load_state_dict(model)
    net.to(world.device).eval()
    return net, data


# What a checkpoint's network shape may ask for (the config's own limits, config/validate.py).
SHAPE_LIMITS = {
    "window": MAX_WINDOW,
    "num_features": 4096,
    "num_actions": 64,
    "hidden": MAX_HIDDEN,
    "embedding": MAX_EMBEDDING,
}
