"""Behaviour cloning from the scripted routine: demonstrations, the cloning update, accuracy.

Clean demonstrations fail as a warm start: the routine is deterministic, so a clone that errs
once lands in states the teacher never visited and derails (measured: 99.9% accuracy, returns
0.16-1.94). So demonstrations here follow DAgger's idea cheaply: in each env the executed action
is random with a per-env probability (`train.bc.noise`), but every visited state is labelled
with the script's action (an anchored script walks back to work when knocked off it). The critic
is cloned too, on the behaviour's discounted return-to-go: PPO from a cloned actor with a fresh
critic unlearned the routine before the critic caught up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from townlet.config.choices import Precision
from townlet.config.schema import TownletConfig
from townlet.policy.choosers import ScriptChooser, scripts_of
from townlet.policy.event_counts import meal_types
from townlet.policy.network import ActorCritic
from townlet.policy.precision import precision_scope
from townlet.policy.replay import discover, replay_events
from townlet.policy.telemetry_record import rollout_events
from townlet.scenarios.controller import validate_scripts
from townlet.world import World
from townlet.world.constants import NUM_ACTIONS
from townlet.world.events import allocate_events, store_tick


class ImitationError(ValueError):
    """Behaviour cloning cannot run for this config (the message says why)."""


@dataclass
class Demonstrations:
    """Labelled states: what the script would do in each, and the return that followed."""

    codes: torch.Tensor  # (N, V, V) uint8
    features: torch.Tensor  # (N, F)
    masks: torch.Tensor  # (N, NUM_ACTIONS) bool
    labels: torch.Tensor  # (N,) int64 the script's action
    returns: torch.Tensor  # (N,) float32 discounted return-to-go under the noisy behaviour
    label: str  # what they are (telemetry's anneal_dataset)
    events: dict[str, float] | None = None  # event counters of the demonstrated episodes

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> Demonstrations:
        """The demonstrations on `device` (where the network learns)."""
        tensors = (self.codes, self.features, self.masks, self.labels, self.returns)
        return Demonstrations(*(t.to(device) for t in tensors), self.label, self.events)

    def take(self, index: torch.Tensor) -> Demonstrations:
        return Demonstrations(
            self.codes.index_select(0, index),
            self.features.index_select(0, index),
            self.masks.index_select(0, index),
            self.labels.index_select(0, index),
            self.returns.index_select(0, index),
            self.label,
            self.events,
        )


def demonstrate(config: TownletConfig, seed: int) -> Demonstrations:
    """Noisy-executed, script-labelled episodes of the scenario (see the module docstring)."""
    opts = config.train.bc
    scripts = scripts_of(config)
    if scripts is None:
        raise ImitationError(
            f"scenario '{config.scenario.name}': behaviour cloning needs a script for every agent"
        )
    envs = opts.demo_envs
    # Demonstrated on the CPU whatever `world.device` says: the trainer moves the result.
    world = World(config.world, config.scenario, num_envs=envs, seed=seed, device="cpu")
    validate_scripts(world, scripts, config.scenario.name)
    teacher = ScriptChooser(world, scripts, anchored=True)
    generator = torch.Generator().manual_seed(seed)
    levels = torch.tensor(list(opts.noise), dtype=torch.float32)
    noise = levels[torch.arange(envs) % len(levels)].unsqueeze(1)
    ticks, a = world.layout.episode_ticks, world.layout.num_agents
    codes, features, masks, labels, rewards, valid = [], [], [], [], [], []
    event_log = allocate_events(ticks, envs, a)
    obs = world.observe()
    for t in range(ticks):
        label = teacher.act(obs)
        explore = torch.rand(envs, a, generator=generator) < noise
        explored = (
            torch.rand(obs.action_mask.shape, generator=generator) * obs.action_mask
        ).argmax(-1)
        codes.append(obs.map_codes)
        features.append(obs.features)
        masks.append(obs.action_mask)
        labels.append(label)
        valid.append(world.state.alive.clone())
        result = world.step(torch.where(explore, explored, label))
        teacher.observe(result)
        rewards.append(result.reward)
        store_tick(event_log, t, result.events)
        obs = result.obs
    returns = torch.zeros(envs, a)
    to_go = []
    for reward in reversed(rewards):
        returns = reward + config.ppo.gamma * returns
        to_go.append(returns)
    to_go.reverse()
    stacked_masks = torch.stack(masks)
    stacked_labels = torch.stack(labels)
    # An alive agent whose label the mask forbids (an emptied fridge the script still wants)
    # teaches nothing: drop it.
    allowed = stacked_masks.gather(-1, stacked_labels.unsqueeze(-1)).squeeze(-1)
    keep = (torch.stack(valid) & allowed).reshape(-1)
    v = world.layout.window
    stacked_features = torch.stack(features).reshape(ticks, -1, features[0].shape[-1])  # (T, N, F)
    meals = meal_types(world.layout)
    return Demonstrations(
        codes=torch.stack(codes).reshape(-1, v, v)[keep],
        features=stacked_features.reshape(-1, stacked_features.shape[-1])[keep],
        masks=stacked_masks.reshape(-1, NUM_ACTIONS)[keep],
        labels=stacked_labels.reshape(-1)[keep],
        returns=torch.stack(to_go).reshape(-1)[keep],
        label=f"script:{config.scenario.name}:noise={','.join(str(x) for x in opts.noise)}",
        events=rollout_events(event_log, stacked_features, a, world.names, meals),
    )


def demonstrations_from_captures(capture_dir: Path, world: World) -> Demonstrations:
    """The states and actions of scripted capture samples under `capture_dir` (found through
    their manifests and checked against the world's names, as replay does). The critic's
    targets are the samples' `value_preds`: the script's discounted return-to-go."""
    refs = discover(Path(capture_dir), world)
    codes, features, masks, labels, returns = [], [], [], [], []
    for ref in refs:
        try:
            with np.load(ref.path) as data:
                sample = {k: data[k] for k in data.files}
        except (OSError, ValueError) as error:
            raise ImitationError(f"{ref.path}: unreadable sample ({error})") from error
        if not bool((sample["old_log_probs"] == 0).all()):
            raise ImitationError(f"{ref.path}: not a scripted capture (its actions were sampled)")
        dense = torch.from_numpy(sample["map"])
        codes.append(world.observer.codes_from_dense(dense))
        features.append(torch.from_numpy(sample["features"]))
        masks.append(torch.from_numpy(sample["action_masks"]))
        labels.append(torch.from_numpy(sample["actions"]).long())
        returns.append(torch.from_numpy(sample["value_preds"][:-1]).float())
    demos = Demonstrations(
        codes=torch.cat(codes),
        features=torch.cat(features),
        masks=torch.cat(masks),
        labels=torch.cat(labels),
        returns=torch.cat(returns),
        label=f"captures:{capture_dir}",
        events=replay_events(refs, world, torch.cat(features).unsqueeze(0)),
    )
    allowed = demos.masks.gather(1, demos.labels.unsqueeze(1)).squeeze(1)
    return demos.take(allowed.nonzero().squeeze(1))


def clone_epoch(
    net: ActorCritic,
    optimizer: torch.optim.Optimizer,
    demos: Demonstrations,
    minibatch: int,
    value_coef: float,
    generator: torch.Generator,
    max_grad_norm: float,
    precision: Precision | str = Precision.fp32,
) -> dict[str, float]:
    """One shuffled pass of cross-entropy on the labels (+ value regression) over `demos`."""
    order = torch.randperm(len(demos), generator=generator)
    device = next(net.parameters()).device
    totals = {"loss_bc": 0.0, "loss_value": 0.0, "loss_total": 0.0, "grad_norm": 0.0}
    entropies, grad_norm_max, batches = [], 0.0, 0
    for start in range(0, len(demos), minibatch):
        part = demos.take(order[start : start + minibatch])
        with precision_scope(precision, device):
            _, logprob, entropy, value, _ = net.get_action_and_value(
                part.codes, part.features, part.masks, action=part.labels
            )
        loss_bc = -logprob.mean()
        loss_value = F.mse_loss(value, part.returns)
        loss = loss_bc + value_coef * loss_value
        optimizer.zero_grad()
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm))
        optimizer.step()
        totals["loss_bc"] += loss_bc.item()
        totals["loss_value"] += loss_value.item()
        totals["loss_total"] += loss.item()
        totals["grad_norm"] += grad_norm
        grad_norm_max = max(grad_norm_max, grad_norm)
        entropies.append(entropy.detach())
        batches += 1
    stats = {k: v / max(batches, 1) for k, v in totals.items()}
    entropy = torch.cat(entropies) if entropies else torch.zeros(1)
    stats.update(
        updates=batches,
        grad_norm_max=grad_norm_max,
        entropy=float(entropy.mean()),
        entropy_std=float(entropy.std()) if len(entropy) > 1 else 0.0,
    )
    return stats


def accuracy(net: ActorCritic, demos: Demonstrations, chunk: int = 16384) -> float:
    """Share of demonstrated states where the policy's most likely action is the label."""
    if not len(demos):
        return 0.0
    hits = 0
    with torch.no_grad():
        for start in range(0, len(demos), chunk):
            part = demos.take(torch.arange(start, min(start + chunk, len(demos))))
            action = net.masked_logits(part.codes, part.features, part.masks).argmax(-1)
            hits += int((action == part.labels).sum())
    return hits / len(demos)
