"""Golden metrics: the regression guard, drift detection, and refreshing the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from townlet.capture import capture
from townlet.golden import DEFAULT_GOLDEN, compare_runs, load_golden, merge_captures
from townlet.golden.store import GoldenError
from townlet.scenarios import load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """A fresh capture of every golden scenario, one run dir each."""
    root = tmp_path_factory.mktemp("suite")
    for i, scenario in enumerate(sorted(load_golden(DEFAULT_GOLDEN))):
        capture(load_config([f"scenario={scenario}"]), root / str(i))
    return root


def test_every_scenario_matches_the_golden_file(suite):
    comparison = compare_runs([suite], DEFAULT_GOLDEN)
    assert comparison.samples >= 14 and comparison.compared > 500
    assert comparison.ok, [
        (d.scenario, d.sample, d.metric, d.golden, d.actual) for d in comparison.drifts
    ]


def test_a_drifted_capture_fails_with_a_table(tmp_path):
    capture(
        load_config(["scenario=queue_conflict", "world.affordances.Shower.duration=6"]),
        tmp_path / "run",
    )
    comparison = compare_runs([tmp_path / "run"], DEFAULT_GOLDEN)
    assert not comparison.ok
    drifted = {d.metric for d in comparison.drifts}
    assert {"value_pred_mean", "action_counts.WAIT"} <= drifted, drifted
    done = subprocess.run(
        [sys.executable, "-m", "townlet.cli", "golden", "compare", str(tmp_path / "run")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "metric" in done.stdout and "value_pred_mean" in done.stdout and "drifted" in done.stdout


def test_compare_cli_passes_on_a_faithful_capture(suite):
    done = subprocess.run(
        [sys.executable, "-m", "townlet.cli", "golden", "compare", str(suite)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "within tolerance" in done.stdout


def test_merge_refreshes_includes_skips_templates_and_dry_runs(suite, tmp_path):
    template = tmp_path / "extra" / "t"
    template.mkdir(parents=True)
    (template / "rollout_sample_metrics.json").write_text(
        json.dumps(
            {"scenario": "_template", "samples": {"rollout_sample_x_000.npz": {"timesteps": 1}}}
        )
    )
    output = tmp_path / "golden.json"
    report = merge_captures(suite, DEFAULT_GOLDEN, output=output, include=["queue_conflict"])
    assert report.updated == {} and report.unchanged == ["queue_conflict"]
    assert not output.exists(), "a faithful capture changes nothing, so nothing is written"
    stale = load_golden(DEFAULT_GOLDEN)
    first = sorted(stale["queue_conflict"])[0]
    stale["queue_conflict"][first]["reward_sum"] += 1.0
    output.write_text(json.dumps({"schema_version": 1, **stale}))
    report = merge_captures(suite, output, include=["queue_conflict"])
    assert report.updated == {"queue_conflict": 1}, "only the sample that changed"
    assert load_golden(output) == load_golden(DEFAULT_GOLDEN)

    report = merge_captures(tmp_path / "extra", output, dry_run=True)
    assert report.skipped_templates == ["_template"] and report.written_to is None
    report = merge_captures(tmp_path / "extra", output, allow_template=True)
    assert "_template" in load_golden(output)

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "townlet.cli",
            "golden",
            "merge",
            str(suite),
            "--dry-run",
            "--output",
            str(tmp_path / "never.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "unchanged: " in done.stdout and "town" in done.stdout
    assert "would update" not in done.stdout
    assert not (tmp_path / "never.json").exists()


def test_bad_inputs_are_named(tmp_path):
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(GoldenError, match="bad.json: not JSON"):
        load_golden(tmp_path / "bad.json")
    with pytest.raises(GoldenError, match="no capture metrics"):
        compare_runs([tmp_path / "empty"], DEFAULT_GOLDEN)
