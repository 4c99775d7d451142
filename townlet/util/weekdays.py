"""The days of the week, Monday first, as the config, the world and telemetry name them."""

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""A day's index is its place here (0 = Monday)."""
