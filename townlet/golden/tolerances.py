"""Which capture metrics are compared against golden values, and how tightly. Declared once.

Patterns are matched in order (fnmatch); the first match decides. Counts must match exactly;
continuous values may differ by `abs + rel * |golden|` (float noise across platforms).
A metric matching no pattern is not compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch


@dataclass(frozen=True)
class Tolerance:
    abs: float = 0.0
    rel: float = 0.0

    def allows(self, golden: float, actual: float) -> bool:
        return abs(actual - golden) <= self.abs + self.rel * abs(golden)

    def __str__(self) -> str:
        return "exact" if self.abs == 0 and self.rel == 0 else f"±{self.abs:g}+{self.rel:g}·|g|"


EXACT = Tolerance()
CONTINUOUS = Tolerance(abs=1e-4, rel=1e-4)

COMPARED: tuple[tuple[str, Tolerance], ...] = (
    ("timesteps", EXACT),
    ("action_counts.*", EXACT),
    ("completions.*", EXACT),
    ("completions_total", EXACT),
    ("contention_events", EXACT),
    ("on_time_ticks", EXACT),
    ("late_ticks", EXACT),
    ("absent_ticks", EXACT),
    ("on_time_events", EXACT),
    ("late_events", EXACT),
    ("absent_events", EXACT),
    ("faints", EXACT),
    ("chat_success", EXACT),
    ("chat_failure", EXACT),
    ("late_help_received", EXACT),
    ("shift_takeovers", EXACT),
    ("outage_ticks.*", EXACT),
    ("chat_quality_mean", CONTINUOUS),
    ("help_reward", CONTINUOUS),
    ("familiarity_max_final", CONTINUOUS),
    ("reward_*", CONTINUOUS),
    ("log_prob_mean", CONTINUOUS),
    ("value_pred_mean", CONTINUOUS),
    ("contention_intensity", CONTINUOUS),
    ("rivalry_max_*", CONTINUOUS),
    ("shift_penalty", CONTINUOUS),
    ("wage_earned", CONTINUOUS),
    ("meter_gain.*", CONTINUOUS),
    ("meter_end.*", CONTINUOUS),
)


def tolerance_for(metric: str) -> Tolerance | None:
    for pattern, tolerance in COMPARED:
        if fnmatch(metric, pattern):
            return tolerance
    return None
