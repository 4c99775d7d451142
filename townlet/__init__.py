"""Townlet: a Hydra-configured experiment framework for a multi-agent small-town simulation."""

__version__ = "0.1.0"
