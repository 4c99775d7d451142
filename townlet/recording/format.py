"""Episode files: `episode_{id:06d}.msgpack.lz4`, an LZ4 frame around msgpack.

Version 2 (written): `{"format_version": 2, "header": {...}, "columns": [...]}`. The header
names everything (run, scenario, seed, config hash, grid and walls, affordance instances, agent
ids, meter and action names, episode metadata); each column is a typed array with its codec:

| codec | stored as | used for |
|---|---|---|
| raw | the array's bytes | positions (uint8), actions, rewards (float32), flags, values, events |
| delta | first differences (wrapping) | time of day |
| q16d | uint16 quantised over [lo, hi], delta over time | meters |
| q8 | uint8 quantised over [lo, hi] | progress, action probabilities, chat quality, relationships |

Relationships (`rivalry`, `familiarity`) are A x A per step. Columns are contiguous per
quantity, which is what LZ4 compresses well (slowly changing meters become runs of equal
deltas). Version 1 (read only) is the row-oriented format of the system we
replace (see tests/fixtures/hamlet-v1/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lz4.frame
import msgpack
import numpy as np

FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
DEFAULT_MAX_BYTES = 256 * 2**20
"""The decompressed size any reader allows when it names no cap of its own (reindex, verify,
export, training start-up): a 4.3 MB file inflating to 1 GiB took `reindex` to 3.2 GB."""
MAX_OBJECTS = 2_000_000
"""msgpack containers and their entries one file may decode into: a 264 KB file of nested
empty arrays, well under the byte cap, once held 4.8 GB as Python objects. A version-2
episode is a few hundred objects (its columns are byte strings); version 1 a few per step."""
MAX_CONTAINER = 1_000_000
"""Entries in one msgpack array or map (allocated before any budget can look at it)."""
V1_METER_NAMES = ("energy", "hygiene", "satiation", "money", "mood", "social", "health", "fitness")
V1_ACTION_NAMES = ("UP", "DOWN", "LEFT", "RIGHT", "INTERACT", "WAIT", "REST", "MEDITATE")
V1_GRID = 8

# name -> (dtype, codec, lo, hi); any column not listed is written raw as given.
CODECS: dict[str, tuple[str, str, float, float]] = {
    "positions": ("uint8", "raw", 0, 0),
    "meters": ("uint16", "q16d", 0.0, 1.0),
    "actions": ("uint8", "raw", 0, 0),
    "rewards": ("float32", "raw", 0, 0),
    "dones": ("bool", "raw", 0, 0),
    "interaction_progress": ("uint8", "q8", 0.0, 1.0),
    "time_of_day": ("uint16", "delta", 0, 0),
    "queued": ("int8", "raw", 0, 0),
    "using": ("int8", "raw", 0, 0),
    "action_probs": ("uint8", "q8", 0.0, 1.0),
    "values": ("float16", "raw", 0, 0),
    "q_values": ("float32", "raw", 0, 0),
    "action_masks": ("bool", "raw", 0, 0),
    "outages": ("bool", "raw", 0, 0),
    "completed": ("int8", "raw", 0, 0),
    "shift_event": ("int8", "raw", 0, 0),
    "fainted": ("bool", "raw", 0, 0),
    "chat": ("int8", "raw", 0, 0),
    "chat_partner": ("int8", "raw", 0, 0),
    "chat_quality": ("uint8", "q8", 0.0, 1.0),
    "helped": ("bool", "raw", 0, 0),
    "took_over": ("int8", "raw", 0, 0),
    "rivalry": ("uint8", "q8", 0.0, 1.0),
    "familiarity": ("uint8", "q8", 0.0, 1.0),
    "state_hash": ("int64", "raw", 0, 0),
    "state_parts": ("uint8", "raw", 0, 0),
    "weekday": ("uint8", "raw", 0, 0),
    "rent": ("int8", "raw", 0, 0),
}
ENV_COLUMNS = ("time_of_day", "outages", "state_hash", "state_parts", "weekday")
"""Columns with one row per tick for the whole env (the others have one per recorded agent)."""
PAIR_COLUMNS = ("rivalry", "familiarity")
"""Per-agent columns that are also per agent on their last axis: (T, A, A), recorded agents only."""


class RecordingError(ValueError):
    """A recording that cannot be read; the message names the episode and the reason."""


@dataclass
class Episode:
    header: dict[str, Any]
    columns: dict[str, np.ndarray]  # leading dim T (steps); per-agent columns (T, A, ...)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.header["metadata"]

    @property
    def steps(self) -> int:
        return int(self.columns["actions"].shape[0])


def _encode_column(name: str, array: np.ndarray) -> dict[str, Any]:
    dtype, codec, lo, hi = CODECS.get(name, (str(array.dtype), "raw", 0, 0))
    if codec in ("q16d", "q8"):
        top = 65535 if codec == "q16d" else 255
        scaled = np.rint((np.clip(array, lo, hi) - lo) / (hi - lo) * top).astype(dtype)
        stored = (
            np.diff(scaled, axis=0, prepend=np.zeros_like(scaled[:1]))
            if codec == "q16d"
            else scaled
        )
    elif codec == "delta":
        values = array.astype(dtype)
        stored = np.diff(values, axis=0, prepend=np.zeros_like(values[:1]))
    else:
        stored = np.ascontiguousarray(array, dtype=dtype)
    return {
        "name": name,
        "dtype": dtype,
        "shape": list(array.shape),
        "codec": codec,
        "lo": lo,
        "hi": hi,
        "data": stored.tobytes(),
    }


def pack_array(array: np.ndarray) -> dict[str, Any]:
    """An array stored exactly (dtype, shape, bytes), for header values such as a start state."""
    array = np.ascontiguousarray(array)
    return {"dtype": str(array.dtype), "shape": list(array.shape), "data": array.tobytes()}


def unpack_array(spec: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(spec["data"], dtype=spec["dtype"]).reshape(spec["shape"]).copy()


def _decode_column(spec: dict[str, Any]) -> np.ndarray:
    stored = np.frombuffer(spec["data"], dtype=spec["dtype"]).reshape(spec["shape"])
    codec, lo, hi = spec["codec"], spec["lo"], spec["hi"]
    if codec == "q16d":
        return (
            np.cumsum(stored, axis=0, dtype=np.uint16).astype(np.float32) * ((hi - lo) / 65535) + lo
        )
    if codec == "q8":
        return stored.astype(np.float32) * ((hi - lo) / 255) + lo
    if codec == "delta":
        return np.cumsum(stored, axis=0, dtype=stored.dtype)
    if codec == "raw":
        return stored
    raise ValueError(f"unknown codec {codec!r} for column {spec['name']!r}")


def encode_episode(episode: Episode) -> tuple[bytes, int]:
    """(LZ4-compressed file bytes, uncompressed size)."""
    payload = {
        "format_version": FORMAT_VERSION,
        "header": episode.header,
        "columns": [_encode_column(name, np.asarray(a)) for name, a in episode.columns.items()],
    }
    packed = msgpack.packb(payload, use_bin_type=True)
    return lz4.frame.compress(packed, compression_level=0), len(packed)


def decompress(data: bytes, label: str, max_bytes: int | None = None) -> bytes:
    """The LZ4 frame's content, refusing to inflate past `max_bytes` (default
    DEFAULT_MAX_BYTES; a small file can expand to gigabytes: the limit is checked while
    decompressing, not after)."""
    max_bytes = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    try:
        decompressor = lz4.frame.LZ4FrameDecompressor()
        packed = decompressor.decompress(data, max_length=max_bytes + 1)
    except RuntimeError as error:
        raise RecordingError(f"{label}: not an LZ4 frame or truncated ({error})") from error
    if len(packed) > max_bytes:
        raise RecordingError(
            f"{label}: decompresses to more than the {max_bytes / 2**20:.0f} MiB allowed"
        )
    if not decompressor.eof:
        raise RecordingError(f"{label}: not an LZ4 frame or truncated (frame incomplete)")
    return packed


def decode_episode(
    data: bytes, label: str, max_bytes: int | None = None, check: bool = True
) -> Episode:
    """Decode a version 1 or 2 file; `label` (e.g. 'episode 7') names it in errors;
    `max_bytes` caps its decompressed size; `check` refuses an episode that cannot be shown
    (see `episode_problem`)."""
    packed = decompress(data, label, max_bytes)
    try:
        payload = _unpack_bounded(packed, label)
    except (
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
        ValueError,
        TypeError,  # a map key that is not hashable
    ) as error:
        raise RecordingError(f"{label}: corrupt msgpack payload ({error})") from error
    if not isinstance(payload, dict):
        raise RecordingError(f"{label}: not a recording (top level is {type(payload).__name__})")
    version = payload.get("format_version", payload.get("version"))
    if version not in SUPPORTED_VERSIONS:
        raise RecordingError(f"{label}: unsupported format version {version!r} (supported: 1, 2)")
    try:
        episode = _from_v2(payload) if version == 2 else _from_v1(payload)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise RecordingError(
            f"{label}: malformed version {version} recording ({error!r})"
        ) from error
    problem = episode_problem(episode) if check else None
    if problem:
        raise RecordingError(f"{label}: malformed version {version} recording ({problem})")
    return episode


class _ObjectBudget:
    """Counts the containers msgpack builds (and their entries) and stops past MAX_OBJECTS."""

    def __init__(self, label: str) -> None:
        self.label, self.used = label, 0

    def spend(self, container):
        self.used += len(container) + 1
        if self.used > MAX_OBJECTS:
            raise RecordingError(
                f"{self.label}: decodes into more than {MAX_OBJECTS:,} objects (refused)"
            )
        return container


def _unpack_bounded(packed: bytes, label: str) -> Any:
    budget = _ObjectBudget(label)
    return msgpack.unpackb(
        packed,
        raw=False,
        strict_map_key=False,
        list_hook=budget.spend,
        object_hook=budget.spend,
        max_array_len=MAX_CONTAINER,
        max_map_len=MAX_CONTAINER,
    )


def episode_problem(episode: Episode) -> str | None:
    """Why an episode that decodes cannot be shown or replayed, or None when it can."""
    header, columns = episode.header, episode.columns
    if not isinstance(header, dict):
        return "the header is not a map"
    for key in ("agent_ids", "meter_names", "action_names", "affordances"):
        if not isinstance(header.get(key), list):
            return f"the header has no {key} list"
    if not header["agent_ids"] or not all(isinstance(a, str) for a in header["agent_ids"]):
        return "agent_ids must be a non-empty list of strings"
    for key in ("world_config", "scenario_config"):
        if header.get(key) is not None and not isinstance(header[key], dict):
            return f"the header's {key} is not a map"
    grid = header.get("grid")
    if not isinstance(grid, dict) or not all(
        isinstance(grid.get(k), int) and 0 < grid[k] <= 4096 for k in ("width", "height")
    ):
        return "the header's grid needs a width and height in 1-4096"
    if not isinstance(header.get("metadata"), dict) or not isinstance(
        header["metadata"].get("episode_id"), int
    ):
        return "the header's metadata has no integer episode_id"
    for aff in header["affordances"]:
        if not isinstance(aff, dict) or not all(k in aff for k in ("name", "type", "x", "y")):
            return "each affordance needs a name, type, x and y"
    missing = [c for c in ("positions", "meters", "actions", "rewards") if c not in columns]
    if missing:
        return f"missing column(s) {', '.join(missing)}"
    steps, agents = columns["actions"].shape[:1], len(header["agent_ids"])
    if not steps or steps[0] == 0:
        return "it has 0 steps"
    t = steps[0]
    expected = {
        "positions": (t, agents, 2),
        "meters": (t, agents, len(header["meter_names"])),
        "actions": (t, agents),
        "rewards": (t, agents),
    }
    optional = {"weekday": (t,), "rent": (t, agents)}  # a multi-day town's
    expected.update({name: shape for name, shape in optional.items() if name in columns})
    for name, shape in expected.items():
        if tuple(columns[name].shape) != shape:
            return f"column {name} has shape {tuple(columns[name].shape)}, expected {shape}"
    positions = columns["positions"].astype(np.int64)
    if (
        (positions < 0).any()
        or (positions[..., 0] >= grid["width"]).any()
        or (positions[..., 1] >= grid["height"]).any()
    ):
        return "positions lie off the grid"
    actions = columns["actions"].astype(np.int64)
    if (actions < 0).any() or (actions >= len(header["action_names"])).any():
        return f"action ids out of range (0-{len(header['action_names']) - 1})"
    return None


def _from_v2(payload: dict[str, Any]) -> Episode:
    columns = {spec["name"]: _decode_column(spec) for spec in payload["columns"]}
    return Episode(header=payload["header"], columns=columns)


def _v1_layout(raw: Any) -> list[dict[str, Any]]:
    """Nested {positions, ordering} or flat {name: [x, y]} affordance layouts."""
    if isinstance(raw, dict) and "positions" in raw:
        positions = raw["positions"]
        names = raw.get("ordering") or list(positions)
    else:
        positions = raw or {}
        names = list(positions)
    return [
        {"name": n, "type": n, "x": int(positions[n][0]), "y": int(positions[n][1])} for n in names
    ]


def _from_v1(payload: dict[str, Any]) -> Episode:
    meta, steps = payload["metadata"], payload["steps"]
    t = len(steps)

    def column(key: str, dtype, width: int | None = None, default=0):
        rows = [s.get(key) for s in steps]
        if width is None:
            return np.array([default if r is None else r for r in rows], dtype=dtype).reshape(t, 1)
        return np.array([[default] * width if r is None else r for r in rows], dtype=dtype).reshape(
            t, 1, width
        )

    columns = {
        "positions": column("position", np.uint8, 2),
        "meters": column("meters", np.float32, len(V1_METER_NAMES)),
        "actions": column("action", np.uint8),
        "rewards": column("reward", np.float32),
        "dones": column("done", np.bool_),
    }
    # hamlet wrote nil for what it did not track: such a column is left out, not filled with 0
    if any(s.get("interaction_progress") is not None for s in steps):
        columns["interaction_progress"] = column("interaction_progress", np.float32, default=0.0)
    if any(s.get("time_of_day") is not None for s in steps):
        columns["time_of_day"] = np.array(
            [s.get("time_of_day") or 0 for s in steps], dtype=np.uint16
        )
    if any(s.get("q_values") is not None for s in steps):
        columns["q_values"] = column("q_values", np.float32, len(V1_ACTION_NAMES), default=0.0)
    if any(s.get("action_masks") is not None for s in steps):
        columns["action_masks"] = column(
            "action_masks", np.bool_, len(V1_ACTION_NAMES), default=True
        )
    layout = payload.get("affordances") or meta.get("affordance_layout")
    header = {
        "format_version": 1,
        "run_id": None,
        "scenario": None,
        "seed": None,
        "config_hash": None,
        "grid": {"width": V1_GRID, "height": V1_GRID, "walls": []},
        "affordances": _v1_layout(layout),
        "agent_ids": ["agent_0"],
        "meter_names": list(V1_METER_NAMES),
        "action_names": list(V1_ACTION_NAMES),
        "ticks_per_day": 24,
        "metadata": {
            "episode_id": int(meta["episode_id"]),
            "survival_steps": int(meta.get("survival_steps", t)),
            "total_reward": float(meta.get("total_reward", 0.0)),
            "curriculum_stage": int(meta.get("curriculum_stage", 1)),
            "recording_reason": meta.get("recording_reason", "periodic"),
            "recording_reasons": [meta.get("recording_reason", "periodic")],
            "timestamp": float(meta.get("timestamp", 0.0)),
        },
    }
    return Episode(header=header, columns=columns)
