"""Replay and live-inference server with a browser viewer."""
