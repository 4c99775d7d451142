"""Trust, configuration and training: a config cannot lie, errors are one line naming the key,
and Ctrl-C ends a run cleanly and resumably (issue 14, items 13-16 and 19)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import interruptible

from townlet.config.errors import ConfigError
from townlet.config.validate import check_memory, validate
from townlet.scenarios import load_config

ROOT = Path(__file__).resolve().parents[1]


def run_train(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "experiments/train.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("experiment=smok", ["experiment/smok", "lr_sweep", "smoke"]),
        ("hparams_search=optuan", ["hparams_search/optuan", "optuna"]),
        ("+world.no_such_key=1", ["world.no_such_key"]),
        ("+foo=1", ["'foo'"]),
        ("world.meters.energy.decay=nan", ["world.meters.energy.decay", "finite"]),
        ("world.meters.energy.decay=inf", ["world.meters.energy.decay", "finite"]),
        ("train.total_ticks=0", ["train.total_ticks=0", "range"]),
        ("ppo.num_envs=0", ["ppo.num_envs=0"]),
        ("ppo.rollout_ticks=0", ["ppo.rollout_ticks=0"]),
        ("ppo.num_minibatches=0", ["ppo.num_minibatches=0"]),
        ("ppo.gamma=1.5", ["ppo.gamma=1.5"]),
        ("ppo.learning_rate=-1", ["ppo.learning_rate"]),
        ("ppo.num_envs=10000000", ["ppo.num_envs=10000000", "GiB"]),
        ("scenario.agents.0.poss=[1,1]", ["scenario 'town'", "agent 'alice'", "poss"]),
        ("+scenario.agents.1.poss=[1,1]", ["scenario 'town'", "agent 'bob'", "poss"]),
        ("world.ticks_per_day=abc", ["world.ticks_per_day"]),
        ("train.source=rolout", ["train.source", "'rolout'", "rollout, replay, mixed, bc"]),
        ("train.anneal.0.mode=pp", ["train.anneal[0].mode", "bc, ppo"]),
        ("tracking.backend=mlfow", ["tracking.backend", "mlflow_server"]),
        ("scenario.agents.0.script.0.do=goto", ["do", "'goto'", "go_to"]),
    ],
)
def test_a_bad_config_is_one_line_naming_the_key_before_anything_runs(override, fragments):
    done = run_train(override)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not (ROOT / "outputs").exists() or "trained" not in done.stdout


def test_validation_holds_outside_the_entry_points_too(tmp_path):
    for overrides, key in (
        (["+world.no_such_key=1"], "world.no_such_key"),
        (["ppo.num_minibatches=0"], "ppo.num_minibatches"),
        (["train.bc.accuracy_every=0"], "train.bc.accuracy_every"),
        (["curriculum=staged", "curriculum.survival_threshold=2"], "survival_threshold"),
        (["world.reward.clip_min=2"], "clip_min"),
    ):
        with pytest.raises(ConfigError, match=key):
            load_config(overrides)
    config = validate(load_config(check=False))
    with pytest.raises(ConfigError, match="would need about .* GiB"):
        check_memory(config, available=2**20)
    check_memory(config, available=64 * 2**30)


@pytest.mark.slow
def test_every_shipped_option_still_validates():
    for group, options in {
        "scenario": [p.stem for p in (ROOT / "conf" / "scenario").glob("*.yaml")],
        "experiment": ["smoke", "lr_sweep"],
        "curriculum": ["staged", "none"],
        "recording": [p.stem for p in (ROOT / "conf" / "recording").glob("*.yaml")],
        "ppo": ["fast", "default"],
    }.items():
        for option in options:
            validate(load_config([f"{group}={option}"], check=False))


def latest_run_status(store: Path) -> tuple[str, dict[str, str]]:
    with sqlite3.connect(store) as db:
        run_uuid, status = db.execute(
            "SELECT run_uuid, status FROM runs ORDER BY start_time DESC LIMIT 1"
        ).fetchone()
        tags = dict(db.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_uuid,)))
    return status, tags


@pytest.mark.slow
def test_ctrl_c_is_one_line_killed_in_mlflow_and_resumable_with_more_ticks(tmp_path):
    store = tmp_path / "mlruns.db"
    run = tmp_path / "run"
    args = [
        sys.executable,
        "experiments/train.py",
        "scenario=kitchen_breakfast",
        "ppo=fast",
        "ppo.num_envs=8",
        "train.total_ticks=20000",
        "train.progress=false",
        f"tracking.uri=sqlite:///{store}",
        f"hydra.run.dir={run}",
    ]
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    log = run / "telemetry" / "ppo.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    lines = [  # a fresh MLflow store logs its creation at start-up: not part of the stop
        line for line in err.strip().splitlines() if line.strip() and "INFO mlflow" not in line
    ]
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err and len(lines) == 1, err[-3000:]
    assert lines[0].startswith("interrupted at epoch ") and "train.resume=true" in lines[0]
    assert f"hydra.run.dir={run}" in lines[0]
    status, tags = latest_run_status(store)
    assert status == "KILLED" and tags.get("interrupted") == "true"

    epoch = int(lines[0].split("interrupted at epoch ")[1].split(";")[0])
    resumed = subprocess.run(
        [a for a in args if not a.startswith("train.total_ticks")]
        + [f"train.total_ticks={(epoch + 3) * 32}", "train.resume=true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    epochs = [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
    assert epochs == list(range(1, epoch + 4)), "the resumed run extends, no epoch repeated"
    shorter = run_train(
        "scenario=kitchen_breakfast",
        "ppo=fast",
        "ppo.num_envs=8",
        "train.total_ticks=32",
        "tracking=off",
        f"hydra.run.dir={run}",
        "train.resume=true",
    )
    assert shorter.returncode != 0 and "already trained" in shorter.stderr


def test_ctrl_c_during_a_store_write_takes_effect_when_the_write_is_done():
    """Interrupted inside a SQLite transaction the store kept its lock, and marking the run
    KILLED failed with `database is locked`: a write finishes first, then Ctrl-C acts."""
    from townlet.tracking.tracker import writes_finish_first

    finished = []
    with pytest.raises(KeyboardInterrupt), writes_finish_first():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # Python runs the handler here: it must not raise inside
        finished.append(True)
    assert finished == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
