"""Epoch telemetry: one schema, an NDJSON writer with rotation, and tools that read it."""

from townlet.telemetry.schema import ALL_KEYS, CURRENT_VERSION, required_names
from townlet.telemetry.writer import TelemetryWriter

__all__ = ["ALL_KEYS", "CURRENT_VERSION", "TelemetryWriter", "required_names"]
