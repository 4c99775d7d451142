"""The anneal schedule: behaviour-cloning and PPO phases in order, with an accuracy gate.

Phases run in the configured order. A BC phase makes its passes over the demonstrations; after
the last, the gate asks whether the policy picks the script's action in at least `threshold` of
the demonstrated states. Passed: its weights are kept as the last good ones and the next phase
starts. Failed: the policy rolls back to the last weights that passed (if any) and the PPO
phases up to the next BC phase are skipped, so PPO never starts from a failed clone. (Stopping
at the first pass over the threshold was measured to hand PPO a clone too weak to keep: 0.90
accuracy after 7 passes, agents on time in 10% of shifts.) A PPO phase runs its rollout epochs.
Each BC phase opens a new cycle (telemetry's `anneal_cycle`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from townlet.config.schema import AnnealStageConfig


@dataclass
class GateResult:
    passed: bool
    rolled_back: bool
    phase_over: bool


class AnnealSchedule:
    def __init__(self, stages: list[AnnealStageConfig], threshold: float) -> None:
        self.stages = [(s.mode, s.epochs) for s in stages]
        self.threshold = threshold
        self.stage = 0
        self.done_in_stage = 0
        self.cycle = -1
        self.ppo_done = 0
        self.gate_weights: dict[str, torch.Tensor] | None = None
        self._enter()

    @property
    def max_epochs(self) -> int:
        """Epochs if every BC phase used all its passes (the progress bar's total)."""
        return sum(epochs for _, epochs in self.stages)

    @property
    def ppo_epochs(self) -> int:
        return sum(epochs for mode, epochs in self.stages if mode == "ppo")

    @property
    def finished(self) -> bool:
        return self.stage >= len(self.stages)

    @property
    def mode(self) -> str:
        return self.stages[self.stage][0]

    def _enter(self) -> None:
        if not self.finished and self.mode == "bc" and self.done_in_stage == 0:
            self.cycle += 1

    def _advance(self) -> None:
        self.stage += 1
        self.done_in_stage = 0
        self._enter()

    @property
    def gate_is_next(self) -> bool:
        """Whether the next BC pass is its phase's last, whose accuracy the gate judges."""
        return self.done_in_stage + 1 >= self.stages[self.stage][1]

    def bc_epoch_done(self, accuracy: float | None, weights: dict[str, torch.Tensor]) -> GateResult:
        """Record a BC pass and its accuracy (None where it was not measured: any pass but the
        last); returns what the gate decided. On a failed gate the caller loads
        `gate_weights` (when not None) into the policy."""
        self.done_in_stage += 1
        last = self.done_in_stage >= self.stages[self.stage][1]
        if accuracy is None and last:
            raise ValueError("the gate needs the accuracy of a BC phase's last pass")
        passed = accuracy is not None and accuracy >= self.threshold
        if not last:
            return GateResult(passed=passed, rolled_back=False, phase_over=False)
        if passed:
            self.gate_weights = {k: v.detach().clone() for k, v in weights.items()}
            self._advance()
            return GateResult(passed=True, rolled_back=False, phase_over=True)
        self._advance()
        while not self.finished and self.mode == "ppo":  # never PPO from a failed clone
            self._advance()
        return GateResult(passed=False, rolled_back=self.gate_weights is not None, phase_over=True)

    def ppo_epoch_done(self) -> None:
        self.done_in_stage += 1
        self.ppo_done += 1
        if self.done_in_stage >= self.stages[self.stage][1]:
            self._advance()

    def state_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "done_in_stage": self.done_in_stage,
            "cycle": self.cycle,
            "ppo_done": self.ppo_done,
            "gate_weights": self.gate_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stage, self.done_in_stage = state["stage"], state["done_in_stage"]
        self.cycle, self.ppo_done = state["cycle"], state["ppo_done"]
        self.gate_weights = state["gate_weights"]
