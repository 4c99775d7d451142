"""What happens between epochs, as hooks the trainer calls in order after every epoch and once
at the end: checkpoints, the progress line and bar, validation for selection, periodic
evaluation.
Each hook gets only the callables it needs, so the trainer's loop stays the algorithm and a
new between-epochs job is a new hook."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

from tqdm import tqdm

from townlet.policy.checkpoint import save_checkpoint
from townlet.policy.run_report import progress_line
from townlet.policy.selection import Selection
from townlet.policy.train_state import TrainState
from townlet.util.phases import PhaseClock
from townlet.util.run_dir import RunDir

log = logging.getLogger(__name__)


class EpochHook(Protocol):
    def after_epoch(self, epoch: int, record: dict[str, Any]) -> None: ...

    def at_end(self, last_epoch: int) -> None: ...


class CheckpointHook:
    """After every epoch: `latest.pt` (what a resume continues from), `best.pt` when the epoch
    set a new best episodic return, and `epoch_N.pt` every `train.checkpoint_every` epochs.
    The recorder is flushed first, so what ended before a checkpoint is on disk when it is.
    First among the hooks: the others read the epoch it records in the train state."""

    def __init__(
        self,
        state: TrainState,
        run_dir: RunDir,
        every: int,
        payload: Callable[[], dict[str, Any]],
        phases: PhaseClock,
    ) -> None:
        self.state, self.run_dir, self.every = state, run_dir, every
        self.payload, self.phases = payload, phases

    def after_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        state = self.state
        state.epoch = epoch
        if state.recorder is not None:
            state.recorder.flush()
        with self.phases.time("checkpoint"):
            payload = self.payload()
            save_checkpoint(self.run_dir.latest, payload)
            if state.best_epoch == epoch:  # this epoch's return is the best so far
                save_checkpoint(self.run_dir.best, payload)
            if self.every > 0 and epoch % self.every == 0:
                save_checkpoint(self.run_dir.checkpoints / f"epoch_{epoch:06d}.pt", payload)

    def at_end(self, last_epoch: int) -> None:
        pass


class ProgressHook:
    """The progress bar when stderr is a terminal (`train.progress`), else a plain line in the
    job log every `train.progress_every_sec`."""

    def __init__(
        self, show: bool | None, every_sec: float, start_epoch: int, num_epochs: int, stage
    ) -> None:
        self.show = sys.stderr.isatty() if show is None else show
        self.every_sec, self.start_epoch, self.num_epochs = every_sec, start_epoch, num_epochs
        self.stage = stage  # () -> the curriculum's stage
        self.bar = tqdm(
            total=num_epochs,
            initial=start_epoch,
            disable=not self.show,
            unit="epoch",
            dynamic_ncols=True,
        )
        self.run_start = self.last_line = time.perf_counter()

    def after_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        now = time.perf_counter()
        if not self.show and now - self.last_line >= self.every_sec:
            done = epoch - self.start_epoch
            log.info(progress_line(record, epoch, self.num_epochs, now - self.run_start, done))
            self.last_line = now
        self.bar.update(1)
        self.bar.set_postfix(
            sps=f"{record.get('steps_per_sec', 0.0):,.0f}",
            ret=f"{record.get('episodic_return', float('nan')):.2f}",
            stage=self.stage(),
            mode=record["data_mode"],
        )

    def at_end(self, last_epoch: int) -> None:
        self.bar.close()


class SelectionHook:
    """Validate the deterministic policy every `train.select_every` PPO epochs and after the
    last; at the end, the best validated weights become the run's policy."""

    def __init__(
        self,
        selection: Selection,
        validate: Callable[[int], float],
        restore: Callable[[int], bool],
        ppo_epochs: Callable[[int], int],
        phases: PhaseClock,
    ) -> None:
        self.selection, self.validate, self.restore = selection, validate, restore
        self.ppo_epochs, self.phases = ppo_epochs, phases

    def after_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        if self.selection.due(self.ppo_epochs(epoch), epoch):
            with self.phases.time("evaluation"):
                self._validate(epoch)

    def at_end(self, last_epoch: int) -> None:
        selection = self.selection
        if self.ppo_epochs(last_epoch) > 0 and selection.last_validated != last_epoch:
            self._validate(last_epoch)
        if self.restore(last_epoch):
            log.info(
                "the run's policy: epoch %d's weights (%s), the best of %d validations",
                selection.best_epoch,
                selection.path,
                selection.validations,
            )

    def _validate(self, epoch: int) -> None:
        value = self.validate(epoch)
        log.info(
            "epoch %d: validation return %.3f (best %.3f at epoch %d)",
            epoch,
            value,
            self.selection.best_return,
            self.selection.best_epoch,
        )


class EvaluationHook:
    """Evaluate every `train.eval_every` epochs before the last (the final evaluation is the
    trainer's own); `on_evaluation` hears the deterministic return and may stop the run."""

    def __init__(
        self,
        every: int,
        num_epochs: int,
        evaluate: Callable[[int], dict[str, Any]],
        on_evaluation: Callable[[int, float], None],
        phases: PhaseClock,
    ) -> None:
        self.every, self.num_epochs, self.evaluate = every, num_epochs, evaluate
        self.on_evaluation, self.phases = on_evaluation, phases

    def after_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        if self.every > 0 and epoch % self.every == 0 and epoch < self.num_epochs:
            with self.phases.time("evaluation"):
                evaluation = self.evaluate(epoch)
            self.on_evaluation(epoch, evaluation["policy_deterministic"]["return_mean"])

    def at_end(self, last_epoch: int) -> None:
        pass
