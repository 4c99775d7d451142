"""Telemetry tools against real training logs and hand-made bad ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT, SAMPLES, interruptible, sample, tool, write_log

from townlet.policy.train import train
from townlet.scenarios import load_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    train(
        load_config(
            [
                "scenario=kitchen_breakfast",
                "ppo=fast",
                "ppo.num_envs=8",
                "train.total_ticks=192",
                "train.eval_episodes=2",
            ]
        ),
        run,
    )
    return run


# ------------------------------------------------------------------ validate
def test_validate_real_logs_and_the_canonical_samples(run_dir):
    log = run_dir / "telemetry" / "ppo.jsonl"
    done = tool("validate", log, *sorted(SAMPLES.glob("*.jsonl")))
    assert done.returncode == 0, done.stderr
    assert f"{log}: 6 record(s) validated." in done.stdout
    assert "telemetry_v1.0.jsonl: 1 record(s) validated." in done.stdout
    via_cli = subprocess.run(
        [sys.executable, "-m", "townlet.cli", "telemetry", "validate", str(log)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert via_cli.returncode == 0 and "6 record(s) validated." in via_cli.stdout


def test_a_fresh_record_has_exactly_the_sample_keys(run_dir):
    fresh = json.loads((run_dir / "telemetry" / "ppo.jsonl").read_text().splitlines()[-1])
    assert set(fresh) == set(sample()), "regenerate docs/samples if the schema changed on purpose"


@pytest.mark.parametrize(
    ("records", "tail", "expected"),
    [
        ([], "", "log.jsonl:1: empty log"),
        ([sample(epoch=1)], '{"epoch": 2, "loss', "log.jsonl:2: truncated last line"),
        ([sample(epoch=1)], "this is not json\n", "log.jsonl:2: not JSON"),
        (
            [sample(epoch=1), {k: v for k, v in sample(epoch=2).items() if k != "grad_norm"}],
            "",
            "log.jsonl:2: epoch 2: missing key 'grad_norm'",
        ),
        (
            [sample(epoch=4, kl_divergence="big")],
            "",
            "log.jsonl:1: epoch 4: key 'kl_divergence': 'big' is not a number",
        ),
        ([sample(epoch=5, lr=1e999)], "", "log.jsonl:1: epoch 5: key 'lr': inf is not finite"),
        (
            [sample(epoch=6, data_mode="offline")],
            "",
            "epoch 6: key 'data_mode': 'offline' is not one of",
        ),
        (
            [sample("1.0", epoch=7, cycle_id=3)],
            "",
            "epoch 7: key 'cycle_id' is 1.1-only but the record is 1.0",
        ),
        (
            [sample(epoch=8, telemetry_version=2.0)],
            "",
            "epoch 8: key 'telemetry_version': unknown version",
        ),
    ],
)
def test_bad_logs_get_one_line_naming_file_line_epoch_and_key(tmp_path, records, tail, expected):
    log = write_log(tmp_path / "log.jsonl", records, tail)
    done = tool("validate", log)
    assert done.returncode == 2
    assert expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_missing_file_is_named(tmp_path):
    done = tool("validate", tmp_path / "nope.jsonl")
    assert done.returncode == 2 and "nope.jsonl: no such file" in done.stderr


def test_baseline_drift_table_relative_columns_and_threshold(tmp_path):
    base = {"baseline_reward_mean": 0.5, "baseline_reward_sum": 0.0}
    (tmp_path / "base.json").write_text(json.dumps(base))
    log = write_log(
        tmp_path / "replay.jsonl",
        [
            sample(epoch=1, data_mode="replay", baseline_reward_mean=0.6, baseline_reward_sum=2.0),
            sample(epoch=2, data_mode="replay", baseline_reward_mean=0.4, baseline_reward_sum=3.0),
        ],
    )
    done = tool("validate", log, "--baseline", tmp_path / "base.json", "--relative")
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines() if line[:1].isdigit()]
    assert rows[0] == ["1", "+0.1", "+2", "+20.00%", "n/a"]
    assert rows[1] == ["2", "-0.1", "+3", "-20.00%", "n/a"]
    failing = tool(
        "validate", log, "--baseline", tmp_path / "base.json", "--drift-threshold", "2.5"
    )
    assert failing.returncode == 1 and "exceeds --drift-threshold 2.5" in failing.stderr
    # a log as the baseline: its first record
    from_log = tool("validate", log, "--baseline", log, "--drift-threshold", "1.5")
    assert from_log.returncode == 0, from_log.stderr


# ------------------------------------------------------------------ watch
def test_watch_lines_and_alerts_in_text_and_json(tmp_path):
    log = write_log(
        tmp_path / "ppo.jsonl",
        [
            sample(epoch=1, kl_divergence=0.01, queue_conflict_events=0, data_mode="rollout"),
            sample(epoch=2, kl_divergence=0.30, queue_conflict_events=5, data_mode="rollout"),
            sample(epoch=3, kl_divergence=0.01, queue_conflict_events=0, data_mode="replay"),
        ],
    )
    text = tool("watch", log, "--kl-threshold", "0.2", "--queue-events-min", "1")
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert lines[0].startswith("Epoch 1: loss_total=")
    assert "Epoch 1: queue_conflict_events 0 below threshold 1" in lines
    assert "Epoch 2: kl_divergence 0.3 exceeds threshold 0.2" in lines
    assert not any(line.startswith("Epoch 3: queue") for line in lines), "rollout-only bound"
    machine = tool("watch", log, "--json", "--kl-threshold", "0.2")
    objects = [json.loads(line) for line in machine.stdout.splitlines()]
    assert [o["type"] for o in objects] == ["record", "record", "alert", "record"]
    assert objects[2] == {
        "type": "alert",
        "epoch": 2,
        "key": "kl_divergence",
        "value": 0.3,
        "threshold": 0.2,
        "kind": "max",
    }
    calm = tool("watch", log, "--kl-threshold", "0.5")
    assert calm.returncode == 0


def test_watch_follow_tails_a_growing_rotating_log_with_partial_lines(tmp_path):
    log = tmp_path / "ppo.jsonl"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "townlet.telemetry",
            "watch",
            str(log),
            "--follow",
            "--json",
            "--interval",
            "0.05",
            "--kl-threshold",
            "0.5",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def writer():
        time.sleep(0.4)  # the watcher starts before the log exists
        with open(log, "a") as handle:
            for epoch in (1, 2):
                handle.write(json.dumps(sample(epoch=epoch, kl_divergence=0.01)) + "\n")
                handle.flush()
            line = json.dumps(sample(epoch=3, kl_divergence=0.02)) + "\n"
            handle.write(line[:40])  # mid-write
            handle.flush()
            time.sleep(0.3)
            handle.write(line[40:])
            handle.flush()
        time.sleep(0.3)
        os.replace(log, tmp_path / "ppo.jsonl.1")  # rotation, as the trainer's writer does
        time.sleep(0.2)
        with open(log, "a") as handle:
            handle.write(json.dumps(sample(epoch=4, kl_divergence=0.03)) + "\n")
            handle.flush()
            time.sleep(0.3)
            handle.write(json.dumps(sample(epoch=5, kl_divergence=0.9)) + "\n")

    thread = threading.Thread(target=writer)
    thread.start()
    out, err = process.communicate(timeout=30)
    thread.join()
    assert process.returncode == 1, err
    objects = [json.loads(line) for line in out.splitlines()]
    assert [o["epoch"] for o in objects if o["type"] == "record"] == [1, 2, 3, 4, 5]
    assert objects[-1]["type"] == "alert" and objects[-1]["epoch"] == 5


def test_watch_follow_stops_cleanly_on_ctrl_c(tmp_path):
    log = write_log(tmp_path / "ppo.jsonl", [sample(epoch=1)])
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "townlet.telemetry",
            "watch",
            str(log),
            "--follow",
            "--interval",
            "0.05",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    first = process.stdout.readline()  # it is following the log (a fixed sleep raced a slow start)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "Epoch 1:" in first + out and "Traceback" not in err


# ------------------------------------------------------------------ summary and plot
def test_summary_formats_last_n_and_baseline(run_dir, tmp_path):
    log = run_dir / "telemetry" / "ppo.jsonl"
    text = tool("summary", log)
    assert text.returncode == 0 and "6 epoch(s) analysed (last epoch 6)" in text.stdout
    assert "data mode rollout x6; cycle 6" in text.stdout and "kl_divergence" in text.stdout
    markdown = tool("summary", log, "--format", "markdown", "--last", "2")
    assert "| metric | latest | min | max |" in markdown.stdout
    assert "2 epoch(s) analysed (last epoch 6)" in markdown.stdout
    data = json.loads(tool("summary", log, "--format", "json").stdout)
    records = [json.loads(x) for x in log.read_text().splitlines()]
    assert data["latest"]["loss_total"] == records[-1]["loss_total"]
    assert data["range"]["kl_divergence"]["max"] == max(r["kl_divergence"] for r in records)
    (tmp_path / "base.json").write_text(json.dumps({"baseline_reward_mean": 0.1}))
    replay = write_log(
        tmp_path / "r.jsonl", [sample(epoch=1, data_mode="replay", baseline_reward_mean=0.25)]
    )
    drifted = json.loads(
        tool("summary", replay, "--baseline", tmp_path / "base.json", "--format", "json").stdout
    )
    assert drifted["baseline_drift"]["baseline_reward_mean"]["drift"] == pytest.approx(0.15)


@pytest.mark.slow
def test_plot_writes_a_png_next_to_the_log_or_where_asked(run_dir, tmp_path):
    log = run_dir / "telemetry" / "ppo.jsonl"
    assert (run_dir / "telemetry" / "ppo.png").exists(), "training plots at the end"
    done = tool(
        "plot", log, "--output", tmp_path / "k.png", "--keys", "episodic_return,loss_entropy"
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tool("plot", log, "--keys", "no_such_key", "--output", tmp_path / "x.png")
    assert bad.returncode == 2 and "no record has key 'no_such_key'" in bad.stderr
    training_plot = (run_dir / "telemetry" / "ppo.png").read_bytes()
    done = tool("plot", log, "--keys", "episodic_return")
    assert done.returncode == 0, done.stderr
    assert (run_dir / "telemetry" / "ppo.episodic_return.png").is_file()
    assert (run_dir / "telemetry" / "ppo.png").read_bytes() == training_plot, "not overwritten"


# ------------------------------------------------------------------ notebook
@pytest.mark.slow
def test_quicklook_notebook_runs_headless_against_a_real_run(run_dir, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("TOWNLET_RUNS", str(run_dir))
    path = ROOT / "docs" / "notebooks" / "telemetry_quicklook.ipynb"
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    table = notebook.cells[-1].outputs[0]["data"]["text/markdown"]
    assert run_dir.name in table and "| 6 |" in table
    images = [
        o
        for cell in notebook.cells
        for o in cell.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 2, "loss and event plots were drawn"


def test_parallel_validation_reports_absolute_line_numbers(tmp_path, monkeypatch):
    from townlet.telemetry import parallel
    from townlet.telemetry.reader import TelemetryError

    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    records = [sample(epoch=i) for i in range(1, 51)]
    good = write_log(tmp_path / "good.jsonl", records)
    assert parallel.validate_count(good, workers=2) == 50
    records[39] = sample(epoch=40, grad_norm="x")
    bad = write_log(tmp_path / "bad.jsonl", records)
    with pytest.raises(TelemetryError, match=r"bad.jsonl:40: epoch 40: key 'grad_norm'"):
        parallel.validate_count(bad, workers=2)
    cut = write_log(tmp_path / "cut.jsonl", records[:10], tail='{"epoch": 11')
    with pytest.raises(TelemetryError, match=r"cut.jsonl:11: truncated last line"):
        parallel.validate_count(cut, workers=2)


def test_keys_lists_each_key_with_its_version_need_and_meaning():
    done = tool("keys", "anneal_bc_acc")
    assert done.returncode == 0, done.stderr
    name, since, need, kind, meaning = done.stdout.strip().split("\t")
    assert (name, since, need, kind) == ("anneal_bc_accuracy", "1.2", "optional", "number")
    assert meaning
    every = tool("keys").stdout.splitlines()
    assert any(line.startswith("kl_divergence\t1.0\trequired") for line in every)
