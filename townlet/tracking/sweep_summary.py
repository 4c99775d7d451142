"""The end of a `-m` sweep: every job's objective and where its run is, best first.

Read from the job directories (their `.hydra/overrides.yaml` and `evaluation.json`), so it works
for every launcher (basic, joblib, submitit) and with tracking off."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from townlet.util.run_dir import RunDir
from townlet.util.stopping import PRUNED_FILE

TRIAL_PREFIX = "train.trial."  # the Optuna sweeper's plumbing, not what the user varied


def job_overrides(run_dir: Path) -> list[str] | None:
    """A Hydra job's command-line overrides (`.hydra/overrides.yaml`); None if it has none."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    return [str(o) for o in yaml.safe_load(path.read_text()) or []]


@dataclass(frozen=True)
class JobRow:
    job: str
    overrides: str
    objective: float | None  # the deterministic policy's evaluation return; None: no result
    run_dir: Path
    pruned_at: int | None = None  # the epoch an Optuna pruner stopped the job at


def sweep_rows(sweep_dir: Path) -> list[JobRow]:
    """One row per job directory of the sweep, best objective first, unfinished jobs last."""
    rows = []
    for job_dir in sorted(Path(sweep_dir).iterdir()):
        overrides = job_overrides(job_dir) if job_dir.is_dir() else None
        if overrides is None:
            continue
        overrides = [o for o in overrides if not o.startswith(TRIAL_PREFIX)]
        evaluation, pruned = RunDir.of(job_dir).evaluation, job_dir / PRUNED_FILE
        objective = pruned_at = None
        if pruned.is_file():
            pruned_at = int(json.loads(pruned.read_text())["epoch"])
        elif evaluation.is_file():
            objective = json.loads(evaluation.read_text())["policy_deterministic"]["return_mean"]
        rows.append(JobRow(job_dir.name, " ".join(overrides), objective, job_dir, pruned_at))
    return sorted(rows, key=lambda r: (r.objective is None, -(r.objective or 0.0)))


def sweep_table(rows: list[JobRow]) -> str:
    """A plain table: job, objective, overrides, run directory."""
    lines = ["job\tobjective\toverrides\trun"]
    for row in rows:
        score = (
            f"pruned@{row.pruned_at}"
            if row.pruned_at is not None
            else "-"
            if row.objective is None
            else f"{row.objective:.4f}"
        )
        lines.append(f"{row.job}\t{score}\t{row.overrides}\t{row.run_dir}")
    return "\n".join(lines)
