"""The end of a `-m` sweep: every job's objective and where its run is, best first.

Read from the job directories (their `.hydra/overrides.yaml` and `evaluation.json`), so it works
for every launcher (basic, joblib, submitit) and with tracking off."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class JobRow:
    job: str
    overrides: str
    objective: float | None  # the deterministic policy's evaluation return; None: no result
    run_dir: Path


def sweep_rows(sweep_dir: Path) -> list[JobRow]:
    """One row per job directory of the sweep, best objective first, unfinished jobs last."""
    rows = []
    for job_dir in sorted(Path(sweep_dir).iterdir()):
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        if not job_dir.is_dir() or not overrides_file.is_file():
            continue
        overrides = yaml.safe_load(overrides_file.read_text()) or []
        evaluation = job_dir / "evaluation.json"
        objective = None
        if evaluation.is_file():
            objective = json.loads(evaluation.read_text())["policy_deterministic"]["return_mean"]
        rows.append(JobRow(job_dir.name, " ".join(map(str, overrides)), objective, job_dir))
    return sorted(rows, key=lambda r: (r.objective is None, -(r.objective or 0.0)))


def sweep_table(rows: list[JobRow]) -> str:
    """A plain table: job, objective, overrides, run directory."""
    lines = ["job\tobjective\toverrides\trun"]
    for row in rows:
        score = "-" if row.objective is None else f"{row.objective:.4f}"
        lines.append(f"{row.job}\t{score}\t{row.overrides}\t{row.run_dir}")
    return "\n".join(lines)
