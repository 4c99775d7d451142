"""Training data from captures (`train.source=replay|mixed`, `train.capture_dir=DIR`).

Samples are found through capture manifests, checked against the world's names, grouped by
shape (length), shuffled per cycle with a seeded generator, and streamed a chunk at a time:
only a chunk's files are ever loaded. A cycle is one pass over every sample.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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


class ReplayError(ValueError):
    """Captures that cannot train this config; the message names the file."""


@dataclass(frozen=True)
class SampleRef:
    path: Path
    timesteps: int
    metrics: dict


def discover(capture_dir: Path, world: World) -> list[SampleRef]:
    """Every sample under `capture_dir`, checked against the world's names and window."""
    root = Path(capture_dir)
    manifests = sorted(root.rglob(f"*{MANIFEST_SUFFIX}")) if root.is_dir() else []
    if not manifests:
        raise ReplayError(f"train.capture_dir={root}: no capture manifests (*{MANIFEST_SUFFIX})")
    names = world.names
    refs = []
    for manifest_path in manifests:
        prefix = manifest_path.name[: -len(MANIFEST_SUFFIX)]
        manifest = json.loads(manifest_path.read_text())
        metrics_path = manifest_path.with_name(f"{prefix}_metrics.json")
        metrics = json.loads(metrics_path.read_text())["samples"] if metrics_path.exists() else {}
        rows = manifest if isinstance(manifest, list) else manifest.get("samples", [])
        for entry in rows:
            row = {"sample": entry} if isinstance(entry, str) else entry
            sample_name = row.get("sample") or row.get("file")  # ours, older ours
            if not sample_name:
                raise ReplayError(f"{manifest_path}: a manifest entry names no 'sample' file")
            meta_path = manifest_path.parent / (
                row.get("meta") or str(Path(sample_name).with_suffix(".json"))
            )
            meta = json.loads(meta_path.read_text())
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
            if [meta["action_names"][str(i)] for i in range(NUM_ACTIONS)] != list(ACTION_NAMES):
                raise ReplayError(f"{meta_path}: action names differ from {list(ACTION_NAMES)}")
            refs.append(
                SampleRef(
                    manifest_path.parent / sample_name,
                    int(row.get("timesteps") or meta["timesteps"]),
                    metrics.get(sample_name, {}),
                )
            )
    return refs


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
    arrays = []
    for ref in refs:
        try:
            with np.load(ref.path) as data:
                arrays.append({k: data[k] for k in data.files})
        except (OSError, ValueError, KeyError) as error:
            raise ReplayError(f"{ref.path}: unreadable sample ({error})") from error

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
