"""Seconds per phase of training (PufferLib-style): where an epoch's wall time goes.

A clock that is off times nothing (its `time` is a shared no-op), so the trainer can wrap its
phases unconditionally. On a GPU each timed phase ends with a synchronize, so that the figure is
the phase's work, not its launch; that is why profiling is a choice (`train.profile`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch

NESTED = {"observation": "world_step"}
"""Phases timed inside another: their seconds are taken out of the outer one."""


class PhaseClock:
    def __init__(self, enabled: bool, device: torch.device | str = "cpu") -> None:
        self.enabled = enabled
        self._sync = enabled and torch.device(device).type == "cuda"
        self.seconds: dict[str, float] = {}
        self.since = time.perf_counter()

    @contextlib.contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._sync:
                torch.cuda.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def time(self, name: str) -> contextlib.AbstractContextManager:
        return self._timed(name) if self.enabled else contextlib.nullcontext()

    def take(self) -> dict[str, float]:
        """Seconds per phase since the last take, `other` for the rest of the wall time and
        `wall` itself; the clock starts again."""
        now = time.perf_counter()
        wall, self.since = now - self.since, now
        out, self.seconds = self.seconds, {}
        for inner, outer in NESTED.items():
            if inner in out and outer in out:
                out[outer] = max(0.0, out[outer] - out[inner])
        out["other"] = max(0.0, wall - sum(out.values()))
        out["wall"] = wall
        return out
