"""Check a scenario's stated behaviour (`scenario.expect`) against its capture's metrics."""

from __future__ import annotations

from dataclasses import dataclass

from townlet.config.schema import ExpectationConfig


@dataclass
class ExpectationResult:
    metric: str
    subject: str  # an agent id, "all agents" or "total"
    value: float | None
    ok: bool
    message: str

    def as_dict(self) -> dict:
        return {
            "metric": self.metric,
            "subject": self.subject,
            "value": self.value,
            "ok": self.ok,
            "message": self.message,
        }


def _bounds(expect: ExpectationConfig) -> str:
    parts = []
    if expect.min is not None:
        parts.append(f">= {expect.min}")
    if expect.max is not None:
        parts.append(f"<= {expect.max}")
    return " and ".join(parts) or "(no bound)"


def _within(value: float, expect: ExpectationConfig) -> bool:
    tolerance = 1e-6
    if expect.min is not None and value < expect.min - tolerance:
        return False
    return not (expect.max is not None and value > expect.max + tolerance)


def check_expectations(
    expectations: list[ExpectationConfig], metrics_by_agent: dict[str, dict[str, float]]
) -> list[ExpectationResult]:
    """One result per expectation (per agent when it applies to each agent)."""
    results = []
    for expect in expectations:
        why = f" ({expect.why})" if expect.why else ""
        if expect.agent is not None and expect.agent not in metrics_by_agent:
            results.append(
                ExpectationResult(
                    expect.metric,
                    expect.agent,
                    None,
                    False,
                    f"{expect.metric}: unknown agent '{expect.agent}'",
                )
            )
            continue
        agents = [expect.agent] if expect.agent is not None else list(metrics_by_agent)
        known = metrics_by_agent[agents[0]] if agents else {}
        if expect.metric not in known:
            results.append(
                ExpectationResult(
                    expect.metric,
                    ", ".join(agents),
                    None,
                    False,
                    f"unknown metric '{expect.metric}' (metrics: {', '.join(sorted(known))})",
                )
            )
            continue
        if expect.total:
            value = sum(metrics_by_agent[a][expect.metric] for a in agents)
            ok = _within(value, expect)
            results.append(
                ExpectationResult(
                    expect.metric,
                    "total",
                    value,
                    ok,
                    f"total {expect.metric} = {value:g}, expected {_bounds(expect)}{why}",
                )
            )
            continue
        for agent in agents:
            value = metrics_by_agent[agent][expect.metric]
            ok = _within(value, expect)
            results.append(
                ExpectationResult(
                    expect.metric,
                    agent,
                    value,
                    ok,
                    f"{agent}: {expect.metric} = {value:g}, expected {_bounds(expect)}{why}",
                )
            )
    return results
