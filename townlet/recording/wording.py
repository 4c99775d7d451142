"""What a recorded event says, and the colour role it is drawn in: the one wording the viewer
(the server puts `text` on every event it sends) and the MP4 renderer both use, so the two can
no longer disagree on what happened."""

from __future__ import annotations

from typing import Any

from townlet.config.choices import WEEKDAYS

WEEKDAY_TITLES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

COLOUR_ROLES = {
    "chat": "chat_ok",
    "late_help": "help",
    "takeover": "help",
    "late": "warning",
    "absent": "critical",
    "faint": "critical",
    "on_time": "bar",
    "completed": "muted",
    "queue_join": "queue",
    "rent_paid": "bar",
    "rent_missed": "critical",
    "day": "ink",
}
"""Event kind -> colour role; each renderer maps roles to its own palette (a failed chat is
`chat_bad`)."""


def colour_role(event: dict[str, Any]) -> str:
    if event.get("kind") == "chat" and not event.get("success", True):
        return "chat_bad"
    return COLOUR_ROLES.get(str(event.get("kind")), "muted")


def event_text(event: dict[str, Any]) -> str:
    """The event in words, e.g. "alice chatted with bob: success (quality 0.82)"."""
    kind, agent = event.get("kind"), event.get("agent")
    if kind == "chat":
        quality = event.get("quality")
        detail = f" (quality {quality:.2f})" if isinstance(quality, (int, float)) else ""
        outcome = "success" if event.get("success") else "failure"
        return f"{agent} chatted with {event.get('with')}: {outcome}{detail}"
    if kind == "takeover":
        shifts = event.get("shifts", 1)
        return f"{agent} took over {shifts} absent colleague's shift" + ("s" if shifts != 1 else "")
    if kind == "completed":
        return f"{agent} finished {event.get('affordance')}"
    if kind == "queue_join":
        return f"{agent} joined the queue at {event.get('at')}"
    if kind == "day":
        weekday = str(event.get("weekday"))
        names = dict(zip((day.value for day in WEEKDAYS), WEEKDAY_TITLES, strict=True))
        return f"{names.get(weekday, weekday)} begins"
    fixed = {
        "late_help": f"{agent} was late; a coworker covered",
        "on_time": f"{agent} arrived at work on time",
        "late": f"{agent} arrived late",
        "absent": f"{agent} missed the shift",
        "faint": f"{agent} fainted",
        "rent_paid": f"{agent} paid the week's rent",
        "rent_missed": f"{agent} could not pay the rent",
    }
    return fixed.get(str(kind), f"{agent}: {kind}")


def worded(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its `text`."""
    return {**event, "text": event_text(event)}
