"""Rollout capture: scripted scenario runs written as replay samples, manifest and metrics."""

from townlet.capture.run import CaptureResult, capture, describe, track_capture

__all__ = ["CaptureResult", "capture", "describe", "track_capture"]
