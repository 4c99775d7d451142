"""The per-phase profile: where a training epoch's wall time goes (`train.profile`)."""

from __future__ import annotations

import json

import pytest

from townlet.policy.run_report import progress_line
from townlet.policy.train import train
from townlet.scenarios import load_config
from townlet.telemetry.schema import PHASES
from townlet.telemetry.validate import check_record
from townlet.util.phases import PhaseClock

SHORT = [
    "ppo=fast",
    "ppo.num_envs=4",
    "train.total_ticks=96",
    "train.anneal=[]",
    "train.eval_episodes=1",
    "tracking=off",
    "recording=off",
    "train.progress=false",
]


def records(run) -> list[dict]:
    return [json.loads(x) for x in (run / "telemetry" / "ppo.jsonl").read_text().splitlines()]


def test_a_profiled_run_accounts_for_its_wall_time_by_phase_in_version_1_3(tmp_path):
    train(
        load_config([*SHORT, "train.profile=true", "train.select_every=1"]), tmp_path / "profiled"
    )
    profiled = records(tmp_path / "profiled")
    known = {f"profile_{name}_sec" for name, _ in PHASES}
    for number, record in enumerate(profiled, 1):
        assert record["telemetry_version"] == 1.3
        check_record(dict(record), tmp_path / "ppo.jsonl", number)
        keys = {k for k in record if k.startswith("profile_")}
        assert keys <= known and {"profile_update_sec", "profile_world_step_sec"} <= keys
        parts = sum(record[k] for k in keys if k != "profile_wall_sec")
        assert parts == pytest.approx(record["profile_wall_sec"], rel=1e-6)
        assert all(record[k] >= 0 for k in keys)
    # validations and evaluations between records land in the next record
    assert any("profile_evaluation_sec" in r for r in profiled[1:])
    line = progress_line(profiled[-1], 2, 3, 1.0, 2)
    shares = line.split("time: ")[1]
    assert "update" in shares and shares.split()[1].endswith("%")
    train(load_config(SHORT), tmp_path / "plain")
    plain = records(tmp_path / "plain")
    assert all(not any(k.startswith("profile_") for k in r) for r in plain)
    assert {r["telemetry_version"] for r in plain} == {1.1}


def test_nested_phases_are_taken_out_of_the_outer_one_and_an_idle_clock_times_nothing():
    clock = PhaseClock(enabled=True)
    with clock.time("world_step"):
        with clock.time("observation"):
            sum(range(20000))
        sum(range(20000))
    taken = clock.take()
    assert taken["world_step"] > 0 and taken["observation"] > 0
    total = taken["world_step"] + taken["observation"] + taken["other"]
    assert total == pytest.approx(taken["wall"], rel=1e-6)
    assert clock.take()["wall"] >= 0 and "world_step" not in clock.take()
    idle = PhaseClock(enabled=False)
    with idle.time("update"):
        pass
    assert idle.seconds == {}
