"""Scenarios: a composed config becomes a world (and, later, scripted behaviour)."""

from townlet.scenarios.build import build_world, load_config

__all__ = ["build_world", "load_config"]
