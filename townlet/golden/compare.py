"""Compare captures with the golden file; report every drifting metric in a table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from townlet.golden.store import GoldenError, find_metrics_files, load_golden, load_metrics
from townlet.golden.tolerances import tolerance_for


@dataclass
class Drift:
    scenario: str
    sample: str
    metric: str
    golden: float | None
    actual: float | None
    tolerance: str

    @property
    def difference(self) -> str:
        if self.golden is None or self.actual is None:
            return "missing"
        return f"{self.actual - self.golden:+.6g}"


@dataclass
class Comparison:
    compared: int  # metrics compared
    samples: int
    drifts: list[Drift]

    @property
    def ok(self) -> bool:
        return not self.drifts


def compare_sample(
    scenario: str, sample: str, golden: dict, actual: dict
) -> tuple[int, list[Drift]]:
    drifts, compared = [], 0
    for metric in sorted(set(golden) | set(actual)):
        tolerance = tolerance_for(metric)
        if tolerance is None:
            continue
        compared += 1
        g, a = golden.get(metric), actual.get(metric)
        if g is None or a is None or not tolerance.allows(g, a):
            drifts.append(Drift(scenario, sample, metric, g, a, str(tolerance)))
    return compared, drifts


def compare_runs(run_dirs: list[Path], golden_path: Path) -> Comparison:
    """Compare every capture under `run_dirs` with the golden file."""
    golden = load_golden(golden_path)
    compared = samples = 0
    drifts: list[Drift] = []
    files = [f for run in run_dirs for f in find_metrics_files(Path(run))]
    if not files:
        raise GoldenError(f"no capture metrics found under {', '.join(map(str, run_dirs))}")
    for path in files:
        scenario, captured = load_metrics(path)
        if scenario not in golden:
            raise GoldenError(f"{path}: no golden entry for scenario '{scenario}' in {golden_path}")
        expected = golden[scenario]
        for sample in sorted(set(expected) | set(captured)):
            if sample not in captured or sample not in expected:
                side = "capture" if sample not in captured else "golden file"
                drifts.append(
                    Drift(scenario, sample, f"(sample missing from {side})", None, None, "-")
                )
                continue
            n, found = compare_sample(scenario, sample, expected[sample], captured[sample])
            compared, samples, drifts = compared + n, samples + 1, drifts + found
    return Comparison(compared, samples, drifts)


def drift_table(drifts: list[Drift]) -> str:
    """A fixed-width per-metric table."""
    header = ("scenario", "sample", "metric", "golden", "actual", "diff", "tolerance")
    rows = [header] + [
        (d.scenario, d.sample, d.metric, _fmt(d.golden), _fmt(d.actual), d.difference, d.tolerance)
        for d in drifts
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"
