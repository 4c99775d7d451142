"""Experiment tracking: one MLflow run per job, a parent run per sweep."""

from townlet.tracking.tracker import NullTracker, Tracker, open_tracker

__all__ = ["NullTracker", "Tracker", "open_tracker"]
