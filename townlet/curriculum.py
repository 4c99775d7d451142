"""Curriculum: advance through stages of rising difficulty once agents survive reliably."""

from __future__ import annotations

from collections import deque

from townlet.config.schema import CurriculumConfig, StageConfig
from townlet.world import World


class Curriculum:
    """Tracks survival over the last `window` finished env episodes; stage numbers are 1-based."""

    def __init__(self, config: CurriculumConfig) -> None:
        if not 0.0 <= config.survival_threshold <= 1.0:
            raise ValueError("curriculum.survival_threshold must be in [0, 1]")
        if config.window < 1:
            raise ValueError("curriculum.window must be >= 1")
        self.config = config
        self.stages: list[StageConfig] = list(config.stages) or [StageConfig()]
        self.stage = 1
        self._survival: deque[float] = deque(maxlen=config.window)
        self.transitions: list[tuple[int, int]] = []  # (epoch, new stage)
        self._epochs_in_stage = 0

    @property
    def current(self) -> StageConfig:
        return self.stages[self.stage - 1]

    def apply(self, world: World) -> None:
        """Set the world to the current stage; a stage asking for more agents than the scenario
        has uses them all."""
        agents = self.current.agents
        if agents is not None:
            agents = min(agents, world.layout.num_agents)
        world.set_stage(self.current.decay_scale, agents, self.current.duration_scale)

    def record(self, survival_rates: list[float]) -> None:
        """Survival fraction of each env episode that just finished."""
        self._survival.extend(survival_rates)

    def maybe_advance(self, world: World, epoch: int) -> bool:
        window = self._survival
        self._epochs_in_stage += 1
        if self.stage >= len(self.stages) or len(window) < window.maxlen:
            return False
        if self._epochs_in_stage < self.current.min_epochs:
            return False
        if sum(window) / len(window) < self.config.survival_threshold:
            return False
        self.stage += 1
        self._epochs_in_stage = 0
        self._survival.clear()
        self.transitions.append((epoch, self.stage))
        self.apply(world)
        return True

    def state_dict(self) -> dict:
        return {
            "stage": self.stage,
            "survival": list(self._survival),
            "transitions": self.transitions,
            "epochs_in_stage": self._epochs_in_stage,
        }

    def load_state_dict(self, state: dict) -> None:
        self.stage = state["stage"]
        self._survival = deque(state["survival"], maxlen=self.config.window)
        self.transitions = [tuple(t) for t in state["transitions"]]
        self._epochs_in_stage = int(state.get("epochs_in_stage", 0))
