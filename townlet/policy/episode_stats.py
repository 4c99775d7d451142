"""Finished-episode statistics over a sliding window, for epoch records.

An epoch in which no episode ended has no return of its own; writing 0.0 there looks like data
and is not (on `town` 3 epochs in 4 would show a sawtooth). Records therefore carry the mean
over the last `window` finished episodes, plus how many finished in the epoch; before the first
episode ends the keys are absent."""

from __future__ import annotations

from collections import deque
from typing import Any


class FinishedEpisodes:
    def __init__(self, window: int) -> None:
        self.returns: deque[float] = deque(maxlen=window)
        self.lengths: deque[float] = deque(maxlen=window)
        self.survival: deque[float] = deque(maxlen=window)
        self.background: deque[float] = deque(maxlen=window)  # under a population

    def add(
        self,
        returns: list[float],
        lengths: list[float],
        survival: list[float],
        background: list[float] = (),
    ) -> None:
        self.returns.extend(returns)
        self.lengths.extend(lengths)
        self.survival.extend(survival)
        self.background.extend(background)

    def record(self, finished_now: int) -> dict[str, Any]:
        """The epoch record's episode keys: running means (when any episode has ended)."""
        keys: dict[str, Any] = {"episodes_finished": finished_now}
        if self.returns:
            keys["episodic_return"] = sum(self.returns) / len(self.returns)
            keys["episodic_length"] = sum(self.lengths) / len(self.lengths)
            keys["episodes_in_window"] = len(self.returns)
        if self.survival:
            keys["survival_rate"] = sum(self.survival) / len(self.survival)
        if self.background:
            keys["episodic_return_background"] = sum(self.background) / len(self.background)
        return keys

    def state_dict(self) -> dict[str, list[float]]:
        return {
            "returns": list(self.returns),
            "lengths": list(self.lengths),
            "survival": list(self.survival),
            "background": list(self.background),
        }

    def load_state_dict(self, state: dict[str, list[float]]) -> None:
        for name in ("returns", "lengths", "survival", "background"):
            target = getattr(self, name)
            target.clear()
            target.extend(state.get(name, ()))  # checkpoints before populations lack background
