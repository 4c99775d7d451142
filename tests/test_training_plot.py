"""The run's training plot (`telemetry/ppo.png`) draws what the scenario has."""

from __future__ import annotations

from townlet.scenarios import load_config


def test_the_training_plot_leaves_out_mechanics_the_scenario_does_not_have():
    from townlet.policy.train import training_keys
    from townlet.scenarios.build import typed

    kitchen = training_keys(typed(load_config(["scenario=kitchen_breakfast"])))
    town = training_keys(typed(load_config([])))
    assert "shift_on_time_events" not in kitchen and "events.completed.Bed" not in kitchen
    assert "shift_on_time_events" in town and "events.completed.Bed" in town
    assert "faint_events" in kitchen  # no faints is a result, not a missing mechanic
