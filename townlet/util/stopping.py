"""`Pruned`: a training job stopped early because its Optuna study's pruner said so.

Raised by the trial reporter at an evaluation, carried through the trainer (which ends cleanly),
and returned, not raised, by the train job, so the sweeper tells the study PRUNED rather than
FAIL. Lives at the bottom layer because the tracking, training and app layers all name it."""

from __future__ import annotations

PRUNED_FILE = "pruned.json"
"""Left in a pruned run's directory: the epoch and evaluation return it stopped at."""


class Pruned(Exception):
    def __init__(self, epoch: int, value: float) -> None:
        super().__init__(f"pruned at epoch {epoch} (evaluation return {value:.4f})")
        self.epoch, self.value = epoch, value

    def __reduce__(self):  # returned across processes by joblib and submitit
        return (Pruned, (self.epoch, self.value))
