"""Recording rules: which finished episodes to keep, and the reason strings users query by.

- periodic: every N-th episode (by episode id) -> `periodic_100`
- performance: total reward in the top / bottom percent of a sliding window of recent episodes,
  once enough history exists -> `top_10.0pct`, `bottom_10.0pct`
- curriculum: the first N episodes at each stage -> `stage_2_first_5`; the last N episodes before
  a stage transition (held in a ring buffer, written when it happens) -> `stage_2_pre_transition`
  (named after the stage being entered)
An episode matching several rules is written once with every reason; the first is primary.
"""

from __future__ import annotations

from collections import deque

from townlet.config.schema import RecordingConfig


class RecordingPolicy:
    def __init__(self, config: RecordingConfig) -> None:
        for key in ("periodic", "stage_first", "stage_pre_transition", "performance_window"):
            if getattr(config, key) < 0:
                raise ValueError(f"recording.{key} must be >= 0")
        for key in ("top_percent", "bottom_percent"):
            if not 0.0 <= getattr(config, key) <= 100.0:
                raise ValueError(f"recording.{key} must be in [0, 100]")
        self.config = config
        self._recent: deque[float] = deque(maxlen=max(config.performance_window, 1))
        self._stage_counts: dict[int, int] = {}

    def reasons(self, episode_id: int, total_reward: float, stage: int) -> list[str]:
        """Reasons to keep a just-finished episode (empty: do not keep). Updates history."""
        c, found = self.config, []
        if c.periodic and episode_id % c.periodic == 0:
            found.append(f"periodic_{c.periodic}")
        if (c.top_percent or c.bottom_percent) and len(self._recent) >= c.performance_min_history:
            ordered = sorted(self._recent)
            if c.top_percent and total_reward >= _quantile(ordered, 1.0 - c.top_percent / 100.0):
                found.append(f"top_{c.top_percent:.1f}pct")
            if c.bottom_percent and total_reward <= _quantile(ordered, c.bottom_percent / 100.0):
                found.append(f"bottom_{c.bottom_percent:.1f}pct")
        self._recent.append(total_reward)
        seen = self._stage_counts.get(stage, 0)
        self._stage_counts[stage] = seen + 1
        if c.stage_first and seen < c.stage_first:
            found.append(f"stage_{stage}_first_{c.stage_first}")
        return found

    def pre_transition_reason(self, new_stage: int) -> str:
        return f"stage_{new_stage}_pre_transition"

    def state_dict(self) -> dict:
        return {"recent": list(self._recent), "stage_counts": dict(self._stage_counts)}

    def load_state_dict(self, state: dict) -> None:
        self._recent.extend(state["recent"])
        self._stage_counts = {int(k): v for k, v in state["stage_counts"].items()}


def _quantile(ordered: list[float], q: float) -> float:
    """Linear-interpolated quantile of sorted values."""
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
