"""Regenerate the pictures in docs/: the MLflow run page of a training run and its plot.

    .venv/bin/python docs/screenshots.py            # trains a short kitchen run (~1 minute)
    .venv/bin/python docs/screenshots.py --chromium /usr/bin/chromium

Trains in a temporary folder with the embedded MLflow store, starts `mlflow ui` on a free
port, opens the run's page (and its model-metrics charts) in headless Chromium through
Playwright and saves them with the run's `telemetry/ppo.png` under docs/images/. Generated
from a real run, never drawn by hand.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
VIEW = "?workflowType=machine_learning"  # MLflow 3.17's UI opens in its GenAI view otherwise
TRAIN = [
    "scenario=kitchen_breakfast",
    "ppo=fast",
    "train.total_ticks=3200",
    "train.eval_every=10",
    "train.progress=false",
]


def train(folder: Path) -> Path:
    run = folder / "run"
    subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "train.py"), *TRAIN, f"hydra.run.dir={run}"],
        cwd=folder,
        check=True,
    )
    return run


def start_ui(store: Path, port: int) -> subprocess.Popen:
    mlflow = Path(sys.executable).parent / "mlflow"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = subprocess.Popen(
        [str(mlflow), "ui", "--backend-store-uri", f"sqlite:///{store}", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    import urllib.request

    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return process
        except OSError:
            time.sleep(1)
    raise RuntimeError("mlflow ui did not start")


def shoot(url: str, chromium: str, pages: dict[str, str]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        for name, path in pages.items():
            page.goto(url + path)
            page.wait_for_load_state("load")  # the UI polls, so the network never goes idle
            time.sleep(8)  # the run's data arrives and the charts draw
            page.screenshot(path=str(IMAGES / name))
            print(f"wrote {IMAGES / name}")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    IMAGES.mkdir(parents=True, exist_ok=True)
    from mlflow import MlflowClient

    from townlet.util.net import free_port

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run = train(folder)
        shutil.copyfile(run / "telemetry" / "ppo.png", IMAGES / "ppo_plot.png")
        print(f"wrote {IMAGES / 'ppo_plot.png'}")
        store = folder / "mlruns.db"
        client = MlflowClient(tracking_uri=f"sqlite:///{store}")
        experiment = client.get_experiment_by_name("train")
        [found] = client.search_runs([experiment.experiment_id])
        base = f"/#/experiments/{experiment.experiment_id}/runs/{found.info.run_id}"
        port = free_port()
        ui = start_ui(store, port)
        try:
            shoot(
                f"http://127.0.0.1:{port}",
                args.chromium,
                {
                    "mlflow_run.png": base + VIEW,
                    "mlflow_run_charts.png": base + "/model-metrics" + VIEW,
                },
            )
        finally:
            os.killpg(ui.pid, signal.SIGTERM)
            ui.wait(timeout=30)


if __name__ == "__main__":
    main()
