"""Refresh the golden file from a capture suite (e.g. a `capture.py -m` multirun folder)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from townlet.golden.store import (
    GoldenError,
    find_metrics_files,
    golden_payload,
    load_golden,
    load_metrics,
)
from townlet.util.atomic import atomic_write_json


@dataclass
class MergeReport:
    updated: dict[str, int] = field(default_factory=dict)  # scenario -> samples that changed
    unchanged: list[str] = field(default_factory=list)  # captured, identical to the golden file
    skipped_templates: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    written_to: Path | None = None


def merge_captures(
    root: Path,
    golden_path: Path,
    output: Path | None = None,
    include: list[str] | None = None,
    allow_template: bool = False,
    dry_run: bool = False,
) -> MergeReport:
    """Replace the golden entries of every scenario captured under `root`."""
    files = find_metrics_files(root)
    if not files:
        raise GoldenError(f"no capture metrics found under {root}")
    existing = load_golden(golden_path) if Path(golden_path).exists() else {}
    report = MergeReport()
    fresh: dict[str, dict] = {}
    for path in files:
        scenario, samples = load_metrics(path)
        if include and scenario not in include:
            report.excluded.append(scenario)
            continue
        if scenario.startswith("_") and not allow_template:
            report.skipped_templates.append(scenario)
            continue
        if scenario in fresh and set(fresh[scenario]) & set(samples):
            raise GoldenError(f"{path}: scenario '{scenario}' captured twice under {root}")
        fresh.setdefault(scenario, {}).update(samples)
    merged = {**existing, **fresh}
    for scenario, samples in sorted(fresh.items()):
        before = existing.get(scenario, {})
        changed = sum(before.get(name) != metrics for name, metrics in samples.items())
        changed += sum(name not in samples for name in before)
        if changed:
            report.updated[scenario] = changed
        else:
            report.unchanged.append(scenario)
    if not dry_run and report.updated:
        target = Path(output or golden_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(target, golden_payload(merged))
        report.written_to = target
    return report
