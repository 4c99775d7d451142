"""`townlet report`: results over seeds from run folders, checked against numbers worked out
by hand on synthetic runs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from townlet.tracking.seed_report import find_runs, summarise, write_report

ROOT = Path(__file__).resolve().parents[1]


def fake_run(folder: Path, overrides: list[str], final: float, history: list[tuple]) -> None:
    """A finished run: its overrides, final evaluation, evaluation history and telemetry."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    evaluation = {"policy_deterministic": {"return_mean": final}, "scripted": {"return_mean": 2.5}}
    (folder / "evaluation.json").write_text(json.dumps(evaluation))
    rows = [
        {"epoch": e, "elapsed_sec": s, "policy_deterministic": {"return_mean": r}}
        for e, s, r in history
    ]
    (folder / "evaluation_history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "telemetry").mkdir()
    records = [{"epoch": e, "episodic_return": r} for e, _, r in history]
    (folder / "telemetry" / "ppo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def sweep(tmp_path):
    finals = {1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0, 5: 10.0}
    histories = {
        1: [(10, 5.0, 1.0), (20, 9.0, 1.0)],  # never reaches the scripted 2.5
        2: [(10, 5.0, 2.0), (20, 9.0, 2.0)],
        3: [(10, 5.0, 2.0), (20, 9.0, 3.0)],  # at 9 s
        4: [(10, 4.0, 4.0), (20, 8.0, 4.0)],  # at 4 s
        5: [(10, 5.0, 10.0), (20, 9.0, 10.0)],  # at 5 s
    }
    for job, seed in enumerate(finals):
        fake_run(
            tmp_path / "sweep" / str(job),
            ["ppo=fast", f"seed={seed}"],
            finals[seed],
            histories[seed],
        )
    for job, seed in enumerate((1, 2), start=5):  # another config: the same return twice
        fake_run(
            tmp_path / "sweep" / str(job),
            ["ppo=fast", "ppo.learning_rate=0.01", f"seed={seed}"],
            0.5,
            [(10, 5.0, 0.5), (20, 9.0, 0.5)],
        )
    pruned = tmp_path / "sweep" / "7"
    fake_run(pruned, ["ppo=fast", "seed=9"], -5.0, [(10, 5.0, -5.0)])
    (pruned / "pruned.json").write_text('{"epoch": 10, "value": -5.0}')
    return tmp_path / "sweep"


def test_groups_by_config_minus_seed_with_hand_computed_statistics(sweep):
    runs = find_runs([sweep])
    assert len(runs) == 7, "the pruned run is not a final result"
    best, other = summarise(runs)
    assert best.key == "ppo=fast" and best.seeds == [1, 2, 3, 4, 5]
    assert best.mean == pytest.approx(4.0)
    assert best.std == pytest.approx(math.sqrt(((1 - 4) ** 2 + 4 + 1 + 0 + 36) / 4))
    assert best.iqm == pytest.approx(3.0)  # 25% trimmed: drop 1.0 and 10.0, mean of 2, 3, 4
    low, high = best.interval
    assert 1.0 <= low < 4.0 < high <= 10.0
    assert best.reached_scripted == 3 and best.seconds_to_scripted_mean == pytest.approx(6.0)
    assert other.key == "ppo.learning_rate=0.01 ppo=fast"
    assert other.interval == (0.5, 0.5) and other.std == 0.0 and other.reached_scripted == 0


@pytest.mark.slow
def test_the_report_command_prints_the_table_and_writes_the_files(sweep, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "townlet", "report", str(sweep)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    header, first, second = done.stdout.splitlines()[:3]
    assert header.startswith("group\truns\tmean")
    assert first.split("\t")[:3] == ["ppo=fast", "5", "4.0000"]
    assert first.split("\t")[5:7] == ["3.0000", "3/5"]
    report = json.loads((sweep / "seed_report.json").read_text())
    assert [g["runs"] for g in report] == [5, 2]
    assert (sweep / "seed_report.png").stat().st_size > 10_000
    nothing = subprocess.run(
        [sys.executable, "-m", "townlet", "report", str(tmp_path / "empty_nowhere")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert nothing.returncode == 2 and nothing.stderr.startswith("error: not a folder")


def test_one_bad_run_is_named_and_skipped_and_the_rest_reported(tmp_path):
    folder = tmp_path / "sweep"
    for seed in (1, 2, 3):
        fake_run(folder / str(seed), [f"seed={seed}"], float(seed), [(10, 5.0, float(seed))])
    (folder / "2" / "evaluation.json").write_text("{not json")
    (folder / "3" / "evaluation_history.jsonl").write_text('{"epoch": 1}\nthirty\n')
    no_seed = folder / "4"
    fake_run(no_seed, [], 4.0, [(10, 5.0, 4.0)])
    (no_seed / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"seed": "${scenario.seed}", "scenario": {"seed": 11}})
    )
    problems: list[str] = []
    runs = find_runs([folder], problems)
    assert sorted(r.seed for r in runs) == [1, 11]  # the schema's interpolation is not a seed
    assert len(problems) == 2
    assert any(str(folder / "2" / "evaluation.json") in p for p in problems), problems
    assert any("evaluation_history.jsonl:2" in p for p in problems), problems
    groups, summary, _ = write_report([folder], tmp_path / "new" / "folder", problems)
    assert summary.is_file()  # the output folder is made
    json.loads(summary.read_text())  # strict JSON


@pytest.mark.parametrize(
    "spoil",
    [
        lambda run: (run / "evaluation.json").write_text(
            '{"policy_deterministic": {"return_mean": NaN}, "scripted": {"return_mean": 1.0}}'
        ),
        lambda run: (run / "evaluation.json").write_text(
            '{"policy_deterministic": {"return_mean": 2.0}, "scripted": {"return_mean": "x"}}'
        ),
        lambda run: (run / "evaluation_history.jsonl").write_text(
            '{"epoch": 10, "elapsed_sec": 5.0, "policy_deterministic": {"return_mean": Infinity}}\n'
        ),
    ],
    ids=["NaN final", "scripted a string", "infinite evaluation"],
)
def test_a_run_with_a_number_that_is_not_finite_is_skipped_not_averaged(tmp_path, spoil):
    """A NaN return was read as a number: the group's mean, interval and IQM all became nan."""
    folder = tmp_path / "sweep"
    for seed in (1, 2):
        fake_run(folder / str(seed), [f"seed={seed}"], float(seed), [(10, 5.0, float(seed))])
    spoil(folder / "2")
    problems: list[str] = []
    runs = find_runs([folder], problems)
    assert [r.seed for r in runs] == [1]
    assert len(problems) == 1 and str(folder / "2") in problems[0], problems


def test_a_long_group_key_is_wrapped_in_the_legend():
    """The village's 240-character key as one legend line squeezed both plots to slivers."""
    from townlet.tracking.seed_report import legend_label

    key = " ".join(f"group.key_{i}=value_{i}" for i in range(12))
    label = legend_label(key, 5)
    assert max(len(line) for line in label.splitlines()) <= 60
    assert label.replace("\n", " ") == f"{key} (5 seeds)"
