"""Training data from captures (`train.source=replay|mixed`, `train.capture_dir=DIR`).

Samples are found through capture manifests, checked against the world's names, grouped by
shape (length), shuffled per cycle with a seeded generator, and streamed a chunk at a time:
only a chunk's files are ever loaded. A cycle is one pass over every sample.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from townlet.policy.network import ActorCritic
from townlet.policy.ppo import Batch
from townlet.policy.rollout import compute_gae
from townlet.policy.telemetry_record import rivalry_statistics
from townlet.telemetry.schema import EVENT_PREFIX
from townlet.world import World
from townlet.world.constants import ACTION_NAMES, NUM_ACTIONS

MANIFEST_SUFFIX = "_manifest.json"
SAMPLE_FIELDS = ("map", "features", "actions", "old_log_probs", "value_preds", "rewards", "dones")
MAX_JSON_BYTES = 64 * 2**20
MAX_SAMPLE_BYTES = 1024 * 2**20
MAX_TIMESTEPS = 1_000_000


class ReplayError(ValueError):
    """Captures that cannot train this config; the message names the file."""


@dataclass(frozen=True)
class SampleRef:
    path: Path
    timesteps: int
    metrics: dict


def discover(capture_dir: Path, world: World) -> list[SampleRef]:
    """Every sample under `capture_dir`, checked against the world's names and window. The
    folder is data from anywhere: a manifest or sidecar of any other shape is a ReplayError
    naming the file."""
    root = Path(capture_dir)
    manifests = sorted(root.rglob(f"*{MANIFEST_SUFFIX}")) if root.is_dir() else []
    if not manifests:
        raise ReplayError(f"train.capture_dir={root}: no capture manifests (*{MANIFEST_SUFFIX})")
    refs = []
    for manifest_path in manifests:
        prefix = manifest_path.name[: -len(MANIFEST_SUFFIX)]
        manifest = _read_json(manifest_path)
        metrics_path = manifest_path.with_name(f"{prefix}_metrics.json")
        metrics = _checked_metrics(metrics_path) if metrics_path.exists() else {}
        rows = manifest if isinstance(manifest, list) else None
        if isinstance(manifest, dict) and isinstance(manifest.get("samples"), list):
            rows = manifest["samples"]
        if rows is None:
            raise ReplayError(f"{manifest_path}: not a capture manifest (a list of samples)")
        for entry in rows:
            refs.append(_sample_ref(manifest_path, entry, metrics, world))
    return refs


def _checked_metrics(path: Path) -> dict[str, dict[str, float]]:
    """Each sample's event counters from a capture's metrics file: finite numbers or a
    ReplayError naming the file (a None or a string once failed mid-training in a sum)."""
    raw = _read_json(path)
    samples = raw.get("samples", {}) if isinstance(raw, dict) else None
    if not isinstance(samples, dict):
        raise ReplayError(f"{path}: not capture metrics (an object with 'samples')")
    checked = {}
    for name, counters in samples.items():
        if not isinstance(counters, dict):
            raise ReplayError(f"{path}: metrics of {name[:200]!r} are not an object")
        for key, value in counters.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ReplayError(f"{path}: {key[:100]!r} of {name[:200]!r} is not a number")
            if not math.isfinite(value) or abs(value) > 1e12:
                raise ReplayError(f"{path}: {key[:100]!r} of {name[:200]!r} is out of range")
        checked[name] = counters
    return checked


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ReplayError(f"{path}: missing")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ReplayError(f"{path}: larger than {MAX_JSON_BYTES // 2**20} MiB")
    try:
        return json.loads(path.read_bytes())
    except (ValueError, OSError) as error:
        raise ReplayError(f"{path}: not readable JSON ({str(error)[:120]})") from error


def _inside(folder: Path, name: str, manifest_path: Path) -> Path:
    """`folder / name`, refused when it leaves the folder (an absolute name, `..`, or a link
    pointing elsewhere): a capture from anywhere reads only its own files."""
    path = folder / name
    if Path(name).is_absolute() or not path.resolve().is_relative_to(folder.resolve()):
        raise ReplayError(f"{manifest_path}: {name[:200]!r} is outside the capture folder")
    return path


def _sample_ref(manifest_path: Path, entry: Any, metrics: dict, world: World) -> SampleRef:
    """One manifest row, its sidecar checked against the world."""
    row = {"sample": entry} if isinstance(entry, str) else entry
    if not isinstance(row, dict):
        raise ReplayError(f"{manifest_path}: a manifest entry is not an object")
    sample_name, meta_name = row.get("sample") or row.get("file"), row.get("meta")  # ours, older
    if not isinstance(sample_name, str) or not sample_name:
        raise ReplayError(f"{manifest_path}: a manifest entry names no 'sample' file")
    if meta_name is not None and not isinstance(meta_name, str):
        raise ReplayError(f"{manifest_path}: 'meta' of {sample_name} is not a file name")
    folder = manifest_path.parent
    sample_path = _inside(folder, sample_name, manifest_path)
    meta_path = _inside(
        folder, meta_name or str(Path(sample_name).with_suffix(".json")), manifest_path
    )
    meta = _read_json(meta_path)
    if not isinstance(meta, dict):
        raise ReplayError(f"{meta_path}: not a capture sidecar (a JSON object)")
    names = world.names
    for key, current in (
        ("feature_names", list(names.features)),
        ("map_channel_names", list(names.dense_channels)),
    ):
        problem = names_differ(meta.get(key), current)
        if problem:
            raise ReplayError(f"{meta_path}: {key}: {problem}")
    if meta.get("window") != world.layout.window:
        raise ReplayError(
            f"{meta_path}: captured with a {meta.get('window')}-wide window; "
            f"this config observes {world.layout.window}"
        )
    actions = meta.get("action_names")
    if not isinstance(actions, dict) or [actions.get(str(i)) for i in range(NUM_ACTIONS)] != list(
        ACTION_NAMES
    ):
        raise ReplayError(f"{meta_path}: action names differ from {list(ACTION_NAMES)}")
    timesteps = row.get("timesteps") or meta.get("timesteps")
    if (
        isinstance(timesteps, bool)
        or not isinstance(timesteps, int)
        or not 0 < timesteps <= MAX_TIMESTEPS
    ):
        where = manifest_path if row.get("timesteps") else meta_path
        raise ReplayError(
            f"{where}: timesteps {timesteps!r} of {sample_name} is not in [1, {MAX_TIMESTEPS}]"
        )
    return SampleRef(sample_path, timesteps, metrics.get(sample_name, {}))


def names_differ(captured: object, current: list[str]) -> str | None:
    """Why a capture's names do not fit this config, naming only the names that differ."""
    if not isinstance(captured, list):
        return "missing from the sidecar (not a Townlet capture, or an older one)"
    if captured == current:
        return None
    extra = [n for n in captured if n not in current]
    missing = [n for n in current if n not in captured]
    if not extra and not missing:
        return "the same names in another order than this config's"

    def some(names: list) -> str:
        shown = ", ".join(map(str, names[:5]))
        return shown + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")

    parts = []
    if extra:
        parts.append(f"the capture has {some(extra)} that this config lacks")
    if missing:
        parts.append(f"this config has {some(missing)} that the capture lacks")
    return "; ".join(parts)


class ReplayStream:
    """Chunks of same-length samples, in a seeded order that is re-shuffled every cycle."""

    def __init__(self, refs: list[SampleRef], chunk: int, seed: int) -> None:
        if chunk < 1:
            raise ValueError("train.replay_chunk must be >= 1")
        self.refs, self.chunk = refs, chunk
        self.generator = torch.Generator().manual_seed(seed)
        self.order: list[list[int]] = []
        self.position = 0
        self.cycles = 0

    def _new_cycle(self) -> None:
        by_length: dict[int, list[int]] = {}
        for i, ref in enumerate(self.refs):
            by_length.setdefault(ref.timesteps, []).append(i)
        chunks = []
        for length in sorted(by_length):
            members = by_length[length]
            shuffled = [members[j] for j in torch.randperm(len(members), generator=self.generator)]
            chunks += [shuffled[k : k + self.chunk] for k in range(0, len(shuffled), self.chunk)]
        self.order = [chunks[j] for j in torch.randperm(len(chunks), generator=self.generator)]
        self.position = 0
        self.cycles += 1

    def next_chunk(self) -> tuple[list[SampleRef], bool]:
        """(samples, whether this chunk starts a new cycle)."""
        started = False
        if self.position >= len(self.order):
            self._new_cycle()
            started = True
        chunk = [self.refs[i] for i in self.order[self.position]]
        self.position += 1
        return chunk, started

    def state_dict(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "order": self.order,
            "position": self.position,
            "cycles": self.cycles,
        }

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.position, self.cycles = state["order"], state["position"], state["cycles"]


@dataclass
class ReplayChunk:
    batch: Batch
    rewards: torch.Tensor  # flat, aligned with the batch
    entropy: torch.Tensor  # the current policy's entropy on the chunk's states
    events: dict[str, float]
    baseline: dict[str, float]


def load_chunk(
    refs: list[SampleRef], world: World, net: ActorCritic, gamma: float, gae_lambda: float
) -> ReplayChunk:
    """Load a chunk's files, turn maps back into codes, and compute advantages with the
    current critic (bootstrapping with the sample's own last value when it did not end)."""
    arrays = [_checked_sample(ref, world) for ref in refs]

    def stack(key: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([a[key] for a in arrays]))

    dense = stack("map")  # (S, T, C, H, W)
    s, t = dense.shape[:2]
    codes = world.observer.codes_from_dense(dense).reshape(s * t, *dense.shape[-2:])
    features = stack("features").reshape(s * t, -1)
    if all("action_masks" in a for a in arrays):
        masks = stack("action_masks").reshape(s * t, -1)
    else:
        masks = torch.ones(s * t, NUM_ACTIONS, dtype=torch.bool)
    actions = stack("actions").reshape(-1)
    logprobs = stack("old_log_probs").reshape(-1).float()
    rewards = stack("rewards").float()  # (S, T)
    dones = stack("dones")
    bootstrap = stack("value_preds")[:, -1].float() * (~dones[:, -1]).float()
    device = next(net.parameters()).device  # samples are read on the CPU; the critic may not be
    codes, features, masks, actions, logprobs, rewards, dones, bootstrap = (
        x.to(device) for x in (codes, features, masks, actions, logprobs, rewards, dones, bootstrap)
    )
    with torch.no_grad():
        _, _, entropy, values, _ = net.get_action_and_value(codes, features, masks, action=actions)
    advantages, returns = compute_gae(
        rewards.T, values.view(s, t).T, dones.T, bootstrap, gamma, gae_lambda
    )
    deterministic = bool((logprobs == 0).all())
    # A deterministic behaviour (the script) is a point mass: its logits make the KL exact.
    logits = (
        torch.full((s * t, NUM_ACTIONS), -1e9, device=device).scatter_(1, actions.unsqueeze(1), 0.0)
        if deterministic
        else None
    )
    batch = Batch(
        codes=codes,
        features=features,
        masks=masks,
        actions=actions,
        logprobs=logprobs,
        logits=logits,
        values=values,
        advantages=advantages.T.reshape(-1),
        returns=returns.T.reshape(-1),
    )
    return ReplayChunk(
        batch,
        rewards.reshape(-1),
        entropy,
        replay_events(refs, world, stack("features")),
        baseline_metrics(refs),
    )


def _checked_sample(ref: SampleRef, world: World) -> dict[str, np.ndarray]:
    """A sample's arrays, their unpacked size bounded before any is read and every array's
    dtype, shape and values checked against the manifest's length and the world."""
    try:
        with zipfile.ZipFile(ref.path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_SAMPLE_BYTES:
            raise ReplayError(f"{ref.path}: unpacks to more than {MAX_SAMPLE_BYTES // 2**20} MiB")
        with np.load(ref.path, allow_pickle=False) as data:
            missing = [key for key in SAMPLE_FIELDS if key not in data.files]
            if missing:
                raise ReplayError(f"{ref.path}: no {', '.join(missing)} array")
            arrays = {k: data[k] for k in (*SAMPLE_FIELDS, "action_masks") if k in data.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise ReplayError(f"{ref.path}: unreadable sample ({str(error)[:120]})") from error
    t, v = ref.timesteps, world.layout.window
    shapes = {
        "map": (t, len(world.names.dense_channels), v, v),
        "features": (t, len(world.names.features)),
        "actions": (t,),
        "old_log_probs": (t,),
        "value_preds": (t + 1,),
        "rewards": (t,),
        "dones": (t,),
        "action_masks": (t, NUM_ACTIONS),
    }
    for key, array in arrays.items():
        if array.shape != shapes[key]:
            raise ReplayError(f"{ref.path}: {key} has shape {array.shape}, expected {shapes[key]}")
        kind = "b" if key in ("dones", "action_masks") else "i" if key == "actions" else "f"
        if array.dtype.kind != kind and not (kind == "i" and array.dtype.kind == "u"):
            raise ReplayError(f"{ref.path}: {key} has dtype {array.dtype}")
        if kind == "f" and not np.isfinite(array).all():
            raise ReplayError(f"{ref.path}: {key} holds NaN or infinite values")
    if arrays["actions"].size and not (
        arrays["actions"].min() >= 0 and arrays["actions"].max() < NUM_ACTIONS
    ):
        raise ReplayError(f"{ref.path}: actions outside 0-{NUM_ACTIONS - 1}")
    return arrays


def replay_events(refs: list[SampleRef], world: World, features: torch.Tensor) -> dict[str, float]:
    """Event counters of the chunk, from its capture metrics; rivalry from its features."""

    def total(key: str) -> float:
        return float(sum(ref.metrics.get(key, 0) for ref in refs))

    events = {
        "queue_conflict_events": int(total("contention_events")),
        "queue_conflict_intensity_sum": total("contention_intensity"),
        "shared_meal_events": 0,  # not recoverable from per-agent samples
        "faint_events": int(total("faints")),
        "shift_on_time_events": int(total("on_time_events")),
        "shift_late_events": int(total("late_events")),
        "shift_absent_events": int(total("absent_events")),
        # each sample is one agent: (T, samples, 1 agent, F)
        **rivalry_statistics(features.transpose(0, 1).unsqueeze(2), world.names),
    }
    for name in world.names.affordance_types:
        events[f"{EVENT_PREFIX}{name}"] = int(total(f"completions.{name}"))
    return events


def baseline_metrics(refs: list[SampleRef]) -> dict[str, float]:
    """The baseline_* keys: what the captured behaviour achieved, from its metrics."""
    sums = [ref.metrics.get("reward_sum", 0.0) for ref in refs]
    means = [ref.metrics.get("reward_mean", 0.0) for ref in refs]
    logps = [ref.metrics.get("log_prob_mean", 0.0) for ref in refs]
    count = len(refs)
    return {
        "baseline_sample_count": count,
        "baseline_reward_mean": sum(means) / count,
        "baseline_reward_sum": sum(sums),
        "baseline_reward_sum_mean": sum(sums) / count,
        "baseline_log_prob_mean": sum(logps) / count,
    }
