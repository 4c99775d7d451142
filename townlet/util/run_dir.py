"""Where everything of a run lives: one value object owns every path in a run directory, so a
file's name is written once (the trainer, the reports, the server and the tools read these)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    """A training or capture run's folder (`outputs/<date>/<time>/` or a sweep's job)."""

    root: Path

    @classmethod
    def of(cls, root: Path | str) -> RunDir:
        return cls(Path(root))

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def latest(self) -> Path:
        """The last weights, for resuming."""
        return self.checkpoints / "latest.pt"

    @property
    def best(self) -> Path:
        """The weights of the best training return."""
        return self.checkpoints / "best.pt"

    @property
    def selected(self) -> Path:
        """The best validated weights: the run's policy when selection ran."""
        return self.checkpoints / "selected.pt"

    @property
    def telemetry_dir(self) -> Path:
        return self.root / "telemetry"

    @property
    def telemetry(self) -> Path:
        """One record per epoch (telemetry/ppo.jsonl)."""
        return self.telemetry_dir / "ppo.jsonl"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation.json"

    @property
    def evaluation_history(self) -> Path:
        return self.root / "evaluation_history.jsonl"

    @property
    def recordings_index(self) -> Path:
        return self.root / "recordings.db"

    @property
    def recordings(self) -> Path:
        return self.root / "recordings"
