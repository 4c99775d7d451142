"""Reading and writing what the systems we replace read and write: telemetry 1.0/1.1/1.2 under
the original validator's rules, capture manifests its loader reads, recordings listed from an
index made elsewhere, newest first (issue 15)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    FIXTURES,
    SAMPLES,
    play,
    receive,
    recorder_for,
    request,
    sample,
    serving,
    tool,
    url,
    write_log,
)
from websockets.asyncio.client import connect

from townlet.capture import capture
from townlet.policy.replay import ReplayError, discover
from townlet.scenarios import build_world, load_config
from townlet.serve.catalog import Catalog

ROOT = Path(__file__).resolve().parents[1]

# The original validator's rules (scripts/validate_ppo_telemetry.py of the system we replace).
ORIGINAL_BASE = {
    "epoch", "updates", "transitions", "loss_policy", "loss_value", "loss_entropy", "loss_total",
    "clip_fraction", "clip_fraction_max", "clip_triggered_minibatches", "adv_mean", "adv_std",
    "adv_zero_std_batches", "adv_min_std", "grad_norm", "kl_divergence", "telemetry_version",
    "lr", "steps", "conflict.rivalry_max_mean_avg", "conflict.rivalry_max_max_avg",
    "conflict.rivalry_avoid_count_mean_avg", "conflict.rivalry_avoid_count_max_avg",
}  # fmt: skip
ORIGINAL_ONLY_11 = {
    "epoch_duration_sec", "cycle_id", "batch_entropy_mean", "batch_entropy_std",
    "grad_norm_max", "kl_divergence_max", "reward_advantage_corr", "rollout_ticks",
    "log_stream_offset", "queue_conflict_events", "queue_conflict_intensity_sum",
}  # fmt: skip


def anneal_record(**changes) -> dict:
    """A 1.2 record as the system we replace writes it during a BC -> PPO anneal."""
    record = sample(telemetry_version=1.2)
    record.update(
        anneal_cycle=1.0,
        anneal_stage="ppo",
        anneal_dataset="scripted_v1",
        anneal_bc_accuracy=0.97,
        anneal_bc_threshold=0.9,
        anneal_bc_passed=True,
        anneal_loss_baseline=None,
        anneal_queue_baseline=None,
        anneal_intensity_baseline=None,
        anneal_loss_flag=False,
        anneal_queue_flag=False,
        anneal_intensity_flag=False,
    )
    record.update(changes)
    return record


def test_our_samples_meet_the_original_validators_rules():
    v10 = json.loads((SAMPLES / "telemetry_v1.0.jsonl").read_text())
    v11 = json.loads((SAMPLES / "telemetry_v1.1.jsonl").read_text())
    assert set(v10) >= ORIGINAL_BASE and not ORIGINAL_ONLY_11 & set(v10)
    assert ORIGINAL_BASE | ORIGINAL_ONLY_11 | {"data_mode"} <= set(v11)
    assert v11["log_stream_offset"] >= 1, "offsets start at 1, as in the original"


def test_version_1_2_is_accepted_with_typed_anneal_keys(tmp_path):
    good = write_log(tmp_path / "v12.jsonl", [anneal_record(), anneal_record(epoch=3)])
    done = tool("validate", good)
    assert done.returncode == 0, done.stderr
    for key, value, expected in (
        ("anneal_bc_passed", "yes", "is not a bool"),
        ("anneal_cycle", "1", "is not a int or float"),
        ("anneal_stage", 2, "is not a str"),
        ("anneal_bc_accuracy", True, "is not a int or float"),
    ):
        bad = write_log(tmp_path / f"{key}.jsonl", [anneal_record(**{key: value})])
        done = tool("validate", bad)
        assert done.returncode == 2 and f"key '{key}'" in done.stderr and expected in done.stderr
    anneal_in_11 = write_log(
        tmp_path / "v11.jsonl", [{**anneal_record(), "telemetry_version": 1.1}]
    )
    assert tool("validate", anneal_in_11).returncode == 2, "anneal keys are 1.2 only"


def test_version_1_0_follows_the_original_rules(tmp_path):
    v10 = json.loads((SAMPLES / "telemetry_v1.0.jsonl").read_text())
    assert tool("validate", write_log(tmp_path / "ok.jsonl", [v10])).returncode == 0
    with_meals = {**v10, "shared_meal_events": 0}  # the original allows it in 1.0
    assert tool("validate", write_log(tmp_path / "meal.jsonl", [with_meals])).returncode == 0
    without = {k: v for k, v in v10.items() if k != "adv_min_std"}
    done = tool("validate", write_log(tmp_path / "missing.jsonl", [without]))
    assert done.returncode == 2 and "adv_min_std" in done.stderr
    for key in ("epoch_duration_sec", "log_stream_offset"):
        done = tool("validate", write_log(tmp_path / f"{key}.jsonl", [{**v10, key: 1.0}]))
        assert done.returncode == 2 and key in done.stderr and "1.1-only" in done.stderr


def test_watch_entropy_threshold_reads_batch_entropy_mean(tmp_path):
    log = write_log(
        tmp_path / "ppo.jsonl", [sample(epoch=1, batch_entropy_mean=0.01, loss_entropy=1.5)]
    )
    done = tool("watch", log, "--entropy-threshold", "0.1")
    assert done.returncode == 1 and "batch_entropy_mean" in done.stdout


@pytest.fixture(scope="module")
def kitchen_capture(tmp_path_factory):
    out = tmp_path_factory.mktemp("capture")
    capture(load_config(["scenario=kitchen_breakfast"]), out)
    return out


def original_loader_entries(manifest_path: Path) -> list[tuple[Path, Path | None]]:
    """What the original's manifest loader requires: a 'samples' list (or a list) whose entries
    are file names or mappings with a 'sample' (and optional 'meta') that exist."""
    data = json.loads(manifest_path.read_text())
    rows = data["samples"] if isinstance(data, dict) else data
    entries = []
    for row in rows:
        sample_path = manifest_path.parent / (row if isinstance(row, str) else row["sample"])
        meta = row.get("meta") if isinstance(row, dict) else None
        entries.append((sample_path, manifest_path.parent / meta if meta else None))
    return entries


def test_manifests_are_read_by_the_original_loader_and_ours_reads_both(kitchen_capture, tmp_path):
    manifest = kitchen_capture / "rollout_sample_manifest.json"
    for sample_path, meta in original_loader_entries(manifest):
        assert sample_path.is_file() and meta is not None and meta.is_file()
    world = build_world(load_config(["scenario=kitchen_breakfast"]))
    assert len(discover(kitchen_capture, world)) == 2
    for rows in (  # the original's plain-list form, and our older `file` key
        [row["sample"] for row in json.loads(manifest.read_text())["samples"]],
        [
            {"file": r["sample"], "meta": r["meta"]}
            for r in json.loads(manifest.read_text())["samples"]
        ],
    ):
        copy = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(kitchen_capture, copy)
        (copy / "rollout_sample_manifest.json").write_text(json.dumps(rows))
        assert len(discover(copy, world)) == 2


@pytest.mark.slow
def test_a_foreign_capture_is_one_line_naming_the_names(kitchen_capture, tmp_path):
    copy = tmp_path / "foreign"
    shutil.copytree(kitchen_capture, copy)
    for meta_path in copy.glob("rollout_sample_*_0*.json"):
        meta = json.loads(meta_path.read_text())
        meta["feature_names"] = [n.replace("energy", "stamina") for n in meta["feature_names"]]
        meta_path.write_text(json.dumps(meta))
    world = build_world(load_config(["scenario=kitchen_breakfast"]))
    with pytest.raises(ReplayError, match="stamina"):
        discover(copy, world)
    done = subprocess.run(
        [sys.executable, "experiments/train.py", "scenario=kitchen_breakfast", "ppo=fast"]
        + ["train.source=replay", f"train.capture_dir={copy}", "tracking=off"]
        + [f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert "feature_names" in lines[0] and "stamina" in lines[0] and "energy" in lines[0]


def townlet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "townlet", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_recordings_list_reads_an_index_made_elsewhere_newest_first(tmp_path):
    copy = tmp_path / "hamlet"
    shutil.copytree(FIXTURES, copy)
    before = {p.name: p.stat().st_mtime_ns for p in copy.rglob("*")}
    done = townlet(
        "recordings", "list", "--db", copy / "metrics.db", "--recordings", copy / "recordings"
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.strip().splitlines()[1:]]
    assert [int(r[0]) for r in rows] == [5, 4, 3, 2, 1, 0], "newest first, as in the original"
    by_id = townlet(
        "recordings", "list", "--db", copy / "metrics.db", "--recordings", copy / "recordings",
        "--order", "episode",
    )  # fmt: skip
    assert [int(line.split("\t")[0]) for line in by_id.stdout.strip().splitlines()[1:]] == [
        0, 1, 2, 3, 4, 5,
    ]  # fmt: skip
    assert {p.name: p.stat().st_mtime_ns for p in copy.rglob("*")} == before, "read-only"
    hint = townlet("recordings", "list", copy)
    assert hint.returncode == 2 and "--db PATH --recordings DIR" in hint.stderr


def test_recordings_list_message_is_newest_first_with_other_orders(tmp_path):
    recorder = recorder_for(tmp_path, periodic=1)
    for episode, reward in enumerate((1.0, 5.0, 3.0)):
        play(recorder, episode, reward=reward)
    recorder.close()

    @serving(Catalog.for_run(tmp_path))
    async def _(server):
        async with connect(url(server)) as ws:
            await receive(ws)

            async def ids(**filters) -> list[int]:
                reply = await request(ws, {"type": "list_recordings", "filters": filters})
                return [r["episode_id"] for r in reply["recordings"]]

            assert await ids() == [2, 1, 0]
            assert await ids(order="oldest") == [0, 1, 2]
            assert await ids(order="reward") == [1, 2, 0]
            bad = await request(ws, {"type": "list_recordings", "filters": {"order": "random"}})
            assert bad["type"] == "error" and "Invalid order" in bad["message"]
