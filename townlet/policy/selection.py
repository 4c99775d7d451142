"""Which weights a run ends with (`train.select_every`).

PPO fine-tuning of a cloned policy can peak and then fall back: on `town` seed 2, the
deterministic policy reached 2.805 (on time in every shift) at epoch 100 and ended at 2.417
(on time in half) at epoch 220, with nothing in the training return to warn of it. With
selection on, the deterministic policy is validated every `select_every` PPO epochs (and after
the last) on world seeds the evaluation never uses; the best validated weights are written to
`checkpoints/selected.pt` and are the run's policy: the final evaluation, its seeds untouched
by the choice, reports them. `latest.pt` stays the last weights, for resuming.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from townlet.config.schema import TownletConfig
from townlet.policy.checkpoint import load_checkpoint, save_checkpoint
from townlet.policy.evaluate import policy_report
from townlet.policy.network import ActorCritic
from townlet.util.run_dir import RunDir

VALIDATION_SEED_OFFSET = 2000
"""Validation plays world seeds from seed + 2000; the evaluation's start at seed + 1000 and
span 4 x 7919, so the two never share a seed for any episode count in use."""


@dataclass
class Selection:
    every: int
    episodes: int
    path: Path
    best_return: float | None = None
    best_epoch: int | None = None
    validations: int = 0
    last_validated: int | None = None

    @classmethod
    def for_run(cls, config: TownletConfig, run: RunDir, resumed: bool) -> Selection | None:
        """The run's selection (None when `train.select_every` is 0), picking up a resumed
        run's earlier choice from its selected.pt."""
        opts = config.train
        if opts.select_every <= 0:
            return None
        selection = cls(opts.select_every, opts.select_episodes, run.selected)
        if resumed and selection.path.is_file():
            chosen = load_checkpoint(selection.path).get("selection") or {}
            selection.best_return = chosen.get("validation_return")
            selection.best_epoch = chosen.get("epoch")
            selection.validations = int(chosen.get("validations", 0))
        return selection

    def due(self, ppo_epochs_done: int, epoch: int) -> bool:
        every_n = ppo_epochs_done > 0 and ppo_epochs_done % self.every == 0
        return every_n and epoch != self.last_validated

    def validate(
        self, config: TownletConfig, net: ActorCritic, epoch: int, payload: dict[str, Any]
    ) -> float:
        """Play the deterministic policy on the validation seeds; keep the weights (the full
        checkpoint `payload`) when they beat every earlier validation. Returns the return."""
        report = policy_report(
            config, net, self.episodes, config.seed + VALIDATION_SEED_OFFSET, True
        )
        value = float(report["return_mean"])
        self.validations += 1
        self.last_validated = epoch
        if self.best_return is None or value > self.best_return:
            self.best_return, self.best_epoch = value, epoch
            save_checkpoint(self.path, {**payload, "selection": self.summary()})
        return value

    def restore_best(self, net: ActorCritic, last_epoch: int) -> bool:
        """Load the best validated weights into `net` unless they are the last ones."""
        if self.best_epoch is None or self.best_epoch == last_epoch:
            return False
        net.load_state_dict(load_checkpoint(self.path)["model"])
        return True

    def summary(self) -> dict[str, Any]:
        return {
            "epoch": self.best_epoch,
            "validation_return": self.best_return,
            "validations": self.validations,
            "every": self.every,
            "episodes": self.episodes,
        }
