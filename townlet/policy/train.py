"""Online PPO over the batched town: `train(cfg, output_dir)`.

Reads top to bottom in the order it runs (CleanRL): set-up and seeding, resume, then per epoch
a rollout of `rollout_ticks` over `num_envs` envs, GAE, the PPO update, an epoch record,
checkpoints, the curriculum, and evaluation. Leaves in the run directory:
`telemetry/ppo.jsonl`, `checkpoints/{latest,best,epoch_NNNNNN}.pt`, `evaluation.json`.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from townlet.config.schema import TownletConfig
from townlet.curriculum import Curriculum
from townlet.policy.checkpoint import (
    CheckpointError,
    check_compatible,
    load_checkpoint,
    save_checkpoint,
)
from townlet.policy.evaluate import evaluate
from townlet.policy.network import ActorCritic
from townlet.policy.ppo import Batch, categorical_kl, ppo_update
from townlet.policy.rollout import Rollout, compute_gae
from townlet.policy.telemetry_record import epoch_record
from townlet.scenarios.build import typed
from townlet.telemetry import TelemetryWriter
from townlet.telemetry.reader import truncate_after_epoch
from townlet.util.atomic import atomic_write_json
from townlet.world import World
from townlet.world.constants import NUM_ACTIONS

CHECKPOINT_NAMES = ("meters", "actions", "features", "dense_channels", "affordance_types", "agents")


@dataclass
class TrainResult:
    output_dir: Path
    epochs: int
    steps: int
    evaluation: dict[str, Any]
    best_return: float | None

    @property
    def objective(self) -> float:
        """What a sweeper maximises: the deterministic policy's evaluation return."""
        return self.evaluation["policy_deterministic"]["return_mean"]


def _resume_path(resume: Any, output_dir: Path) -> Path | None:
    if resume is False or resume is None or str(resume).lower() in ("false", "none", ""):
        return None
    if resume is True or str(resume).lower() == "true":
        path = output_dir / "checkpoints" / "latest.pt"
        if not path.exists():
            raise CheckpointError(
                f"train.resume=true: no checkpoint at {path}; pass train.resume=PATH or "
                "hydra.run.dir=<the killed run's directory>"
            )
        return path
    return Path(str(resume))


def train(cfg: DictConfig | TownletConfig, output_dir: Path) -> TrainResult:
    config = typed(cfg) if isinstance(cfg, DictConfig) else cfg
    ppo, opts = config.ppo, config.train
    if opts.source != "rollout":
        from townlet.policy.replay import train_with_captures

        return train_with_captures(config, output_dir)
    output_dir = Path(output_dir)

    # --- seeding and set-up
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(config.seed)
    world = World(
        config.world, config.scenario, num_envs=ppo.num_envs, seed=config.seed, auto_reset=True
    )
    layout, names = world.layout, world.names
    e, a = ppo.num_envs, layout.num_agents
    n, window, num_features = e * a, layout.window, len(names.features)
    net = ActorCritic(window, num_features, NUM_ACTIONS, ppo.hidden_size, ppo.embedding_dim)
    optimizer = torch.optim.Adam(net.parameters(), lr=ppo.learning_rate, eps=1e-5)
    act_generator = torch.Generator().manual_seed(config.seed + 1)
    shuffle_generator = torch.Generator().manual_seed(config.seed + 2)
    curriculum = Curriculum(config.curriculum)
    curriculum.apply(world)
    world.reset()
    num_epochs = max(1, math.ceil(opts.total_ticks / ppo.rollout_ticks))
    checkpoint_names = {k: list(getattr(names, k)) for k in CHECKPOINT_NAMES}
    meal_types = tuple(
        i
        for i, t in enumerate(names.affordance_types)
        if config.world.affordances[t].effects.get("satiation", 0.0) > 0
    )
    telemetry_path = output_dir / "telemetry" / "ppo.jsonl"
    start_epoch, steps, cycle_id, best_return, offset = 0, 0, 0, None, 0
    episode_faints = torch.zeros(e)

    # --- resume
    resume_from = _resume_path(opts.resume, output_dir)
    if resume_from is not None:
        data = load_checkpoint(resume_from)
        check_compatible(resume_from, data, checkpoint_names, net.shape)
        if data["num_envs"] != e or data["num_epochs"] != num_epochs:
            trained = f"ppo.num_envs={data['num_envs']} over {data['num_epochs']} epochs"
            raise CheckpointError(
                f"{resume_from}: trained with {trained}; this config has {e} and {num_epochs}"
            )
        net.load_state_dict(data["model"])
        optimizer.load_state_dict(data["optimizer"])
        act_generator.set_state(data["generators"]["action"])
        shuffle_generator.set_state(data["generators"]["shuffle"])
        torch.set_rng_state(data["generators"]["torch"])
        world.restore(data["world"])
        curriculum.load_state_dict(data["curriculum"])
        start_epoch, steps, cycle_id = data["epoch"], data["steps"], data["cycle_id"]
        best_return, offset, episode_faints = (
            data["best_return"],
            data["telemetry_offset"],
            data["episode_faints"],
        )
        truncate_after_epoch(telemetry_path, start_epoch)
    writer = TelemetryWriter(
        telemetry_path, config.telemetry.log_frequency, config.telemetry.max_entries, offset
    )
    buffers = Rollout.allocate(ppo.rollout_ticks, n, window, num_features, NUM_ACTIONS)
    obs = world.observe()
    show = sys.stderr.isatty() if opts.progress is None else opts.progress
    bar = tqdm(
        total=num_epochs, initial=start_epoch, disable=not show, unit="epoch", dynamic_ncols=True
    )
    evaluation: dict[str, Any] = {}

    for epoch in range(start_epoch + 1, num_epochs + 1):
        epoch_start = time.perf_counter()
        lr = (
            ppo.learning_rate * (1.0 - (epoch - 1) / num_epochs)
            if ppo.anneal_lr
            else ppo.learning_rate
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        stage = curriculum.stage

        # --- rollout: act in the world with the current policy
        finished_returns, finished_lengths, survival = [], [], []
        with torch.no_grad():
            for t in range(ppo.rollout_ticks):
                codes = obs.map_codes.reshape(n, window, window)
                features = obs.features.reshape(n, num_features)
                masks = obs.action_mask.reshape(n, NUM_ACTIONS)
                action, logprob, entropy, value, logits = net.get_action_and_value(
                    codes, features, masks, generator=act_generator
                )
                buffers.codes[t] = codes
                buffers.features[t] = features
                buffers.masks[t] = masks
                buffers.actions[t] = action
                buffers.logprobs[t] = logprob
                buffers.logits[t] = logits
                buffers.entropy[t] = entropy
                buffers.values[t] = value
                buffers.valid[t] = world.state.alive.reshape(n)
                result = world.step(action.view(e, a))
                buffers.rewards[t] = result.reward.reshape(n)
                buffers.dones[t] = (result.terminated | result.truncated).reshape(n)
                ev = result.events
                buffers.contention[t] = ev.contention.reshape(n)
                buffers.intensity[t] = ev.contention_intensity.reshape(n)
                buffers.completed[t] = ev.completed.reshape(n)
                buffers.shift_event[t] = ev.shift_event.reshape(n)
                buffers.fainted[t] = ev.fainted.reshape(n)
                episode_faints += ev.fainted.sum(-1)
                if bool(result.env_done.any()):
                    done = result.env_done
                    active = world._fresh.alive.sum(-1).clamp(min=1).float()
                    finished_returns += (result.episode_return.sum(-1) / active)[done].tolist()
                    finished_lengths += result.episode_length[done].tolist()
                    survival += (1.0 - episode_faints / active)[done].tolist()
                    episode_faints[done] = 0
                obs = result.obs
            next_value = net.get_value(
                obs.map_codes.reshape(n, window, window), obs.features.reshape(n, num_features)
            )
        rollout_sec = time.perf_counter() - epoch_start

        # --- advantages (GAE) and the flat batch of valid transitions
        advantages, returns = compute_gae(
            buffers.rewards, buffers.values, buffers.dones, next_value, ppo.gamma, ppo.gae_lambda
        )
        valid = buffers.valid.reshape(-1)
        index = valid.nonzero().squeeze(1)

        def flat(x: torch.Tensor, index: torch.Tensor = index) -> torch.Tensor:
            """(T, N, ...) -> (B, ...) valid transitions, b_ in CleanRL's naming."""
            return x.reshape(-1, *x.shape[2:])[index]

        batch = Batch(
            codes=flat(buffers.codes),
            features=flat(buffers.features),
            masks=flat(buffers.masks),
            actions=flat(buffers.actions),
            logprobs=flat(buffers.logprobs),
            logits=flat(buffers.logits),
            values=flat(buffers.values),
            advantages=flat(advantages),
            returns=flat(returns),
        )

        # --- PPO update
        update_start = time.perf_counter()
        stats = ppo_update(net, optimizer, batch, ppo, shuffle_generator) if len(batch) else {}
        with torch.no_grad():
            new_logits = (
                torch.cat(
                    [
                        net.get_action_and_value(
                            batch.codes[i : i + 8192],
                            batch.features[i : i + 8192],
                            batch.masks[i : i + 8192],
                            action=batch.actions[i : i + 8192],
                        )[4]
                        for i in range(0, len(batch), 8192)
                    ]
                )
                if len(batch)
                else batch.logits
            )
            kl = float(categorical_kl(batch.logits, new_logits).mean()) if len(batch) else 0.0
        update_sec = time.perf_counter() - update_start
        steps += ppo.rollout_ticks * n
        cycle_id += 1
        curriculum.record(survival)
        duration = time.perf_counter() - epoch_start

        record = epoch_record(
            epoch=epoch,
            stats=stats,
            kl=kl,
            lr=lr,
            steps=steps,
            cycle_id=cycle_id,
            duration=duration,
            rollout_sec=rollout_sec,
            update_sec=update_sec,
            buffers=buffers,
            batch=batch,
            flat_rewards=flat(buffers.rewards),
            agents=a,
            names=names,
            rollout_ticks=ppo.rollout_ticks,
            finished_returns=finished_returns,
            finished_lengths=finished_lengths,
            survival=survival,
            stage=stage,
            agent_steps=ppo.rollout_ticks * n,
            meal_types=meal_types,
        )
        if writer.should_log(epoch):
            writer.write(record)

        # --- checkpoints: latest every epoch, best by episodic return, periodic
        episodic = record["episodic_return"] if finished_returns else None
        improved = episodic is not None and (best_return is None or episodic > best_return)
        if improved:
            best_return = episodic
        advanced = curriculum.maybe_advance(world, epoch)
        payload = {
            "epoch": epoch,
            "steps": steps,
            "cycle_id": cycle_id,
            "num_epochs": num_epochs,
            "num_envs": e,
            "model": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generators": {
                "action": act_generator.get_state(),
                "shuffle": shuffle_generator.get_state(),
                "torch": torch.get_rng_state(),
            },
            "world": world.snapshot(),
            "curriculum": curriculum.state_dict(),
            "telemetry_offset": writer.offset,
            "best_return": best_return,
            "episode_faints": episode_faints.clone(),
            "names": checkpoint_names,
            "network_shape": net.shape,
            "scenario": config.scenario.name,
            "config": OmegaConf.to_yaml(OmegaConf.structured(config)),
        }
        checkpoints = output_dir / "checkpoints"
        save_checkpoint(checkpoints / "latest.pt", payload)
        if improved:
            save_checkpoint(checkpoints / "best.pt", payload)
        if opts.checkpoint_every > 0 and epoch % opts.checkpoint_every == 0:
            save_checkpoint(checkpoints / f"epoch_{epoch:06d}.pt", payload)

        # --- evaluation
        if opts.eval_every > 0 and epoch % opts.eval_every == 0 and epoch < num_epochs:
            evaluation = evaluate(config, net, opts.eval_episodes, config.seed + 1000)
            atomic_write_json(output_dir / "evaluation.json", {"epoch": epoch, **evaluation})
        bar.update(1)
        bar.set_postfix(
            sps=f"{record['steps_per_sec']:,.0f}",
            ret=f"{record['episodic_return']:.2f}",
            stage=curriculum.stage if not advanced else f"{stage}->{curriculum.stage}",
        )
    bar.close()

    evaluation = evaluate(config, net, opts.eval_episodes, config.seed + 1000)
    atomic_write_json(output_dir / "evaluation.json", {"epoch": num_epochs, **evaluation})
    return TrainResult(output_dir, num_epochs, steps, evaluation, best_return)


def describe(result: TrainResult) -> str:
    ev = result.evaluation
    scripted = ev.get("scripted")
    policy, sampled = ev["policy_deterministic"], ev["policy_sampled"]
    rows = [
        f"trained {result.epochs} epochs ({result.steps:,} agent-steps) -> {result.output_dir}",
        f"evaluation return per agent-episode: policy {policy['return_mean']:.3f} "
        f"(sampled {sampled['return_mean']:.3f}), random {ev['random']['return_mean']:.3f}"
        + (f", scripted {scripted['return_mean']:.3f}" if scripted else ""),
    ]
    return "\n".join(rows)
