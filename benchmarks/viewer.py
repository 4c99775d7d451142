"""The viewer at scale, measured in headless Chromium, as JSON lines: frames per second while a
`village` replay (32 x 24 tiles, 16 agents) plays at speed 10 (requestAnimationFrame intervals
over 3 s), the time from clicking a 2,000-step episode to its first frame drawn (server
decode + first state update + drawing), and for a week of the village (`village_week`, 16
agents, 1,680 steps) the time to its first frame and from a seek to any step to that step drawn
(20 seeks to steps drawn with a fixed seed; the worst and the median).

Run: python benchmarks/viewer.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from townlet.capture import capture
from townlet.scenarios import load_config
from townlet.serve.spawn import spawn_viewer

ROOT = Path(__file__).resolve().parents[1]
LONG = [  # a 2,000-step town episode: no fainting, so it runs its whole length
    "scenario=town",
    "capture.record=true",
    "capture.ticks=2000",
    "world.meters.energy.critical=false",
    "world.meters.satiation.critical=false",
]
RAF = """() => new Promise((done) => { const gaps = []; let last = performance.now();
    const tick = (now) => { gaps.push(now - last); last = now;
      if (gaps.length < 180) requestAnimationFrame(tick); else done(gaps); };
    requestAnimationFrame(tick); })"""


def serve(run: Path) -> tuple[subprocess.Popen, str]:
    return spawn_viewer(run)


SEEK = """(step) => new Promise((done) => { const asked = performance.now();
    const bar = document.querySelector('#timeline'); bar.value = step;
    bar.dispatchEvent(new Event('input'));
    const wait = () => (window.townletLast && window.townletLast.step === step)
      ? done(window.townletDrawnAt - asked) : requestAnimationFrame(wait);
    wait(); })"""


def measure_week(page, week: Path) -> dict[str, float]:
    """Open the week from the list, then seek to 20 steps spread at random over it."""
    import random

    process, address = serve(week)
    try:
        page.goto(address)
        row = page.locator("#recordings tbody tr").first
        row.wait_for()
        page.evaluate(
            """() => document.querySelector('#recordings').addEventListener('click',
                () => { window.clickAt = performance.now(); }, true)"""
        )
        row.click()
        page.wait_for_selector("#cursor:text('1 / 1680')")
        opened = page.evaluate("() => window.townletDrawnAt - window.clickAt")
        steps = random.Random(7).sample(range(1680), 20)
        seeks = sorted(page.evaluate(SEEK, step) for step in steps)
    finally:
        process.terminate()
    return {"week_open_ms": opened, "week_seek_max_ms": seeks[-1], "week_seek_median_ms": seeks[10]}


def measure(chromium: str, village: Path, long: Path, week: Path | None = None) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    figures = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        process, address = serve(village)
        try:
            page.goto(address + "?episode=0&step=0")
            page.wait_for_selector("#cursor:text('1 / 240')")
            page.select_option("#speed", "10")
            page.click("#play")
            gaps = sorted(page.evaluate(RAF)[10:])
            figures["village_fps"] = 1000.0 / gaps[len(gaps) // 2]
            figures["village_fps_p90_frame_ms"] = gaps[int(len(gaps) * 0.9)]
        finally:
            process.terminate()
        process, address = serve(long)
        try:
            page.goto(address)
            row = page.locator("#recordings tbody tr").first
            row.wait_for()
            page.evaluate(  # the page's own clock: from the click to the first frame drawn
                """() => document.querySelector('#recordings').addEventListener('click',
                    () => { window.clickAt = performance.now(); }, true)"""
            )
            started = time.perf_counter()
            row.click()
            page.wait_for_selector("#cursor:text('1 / 2000')")
            figures["load_2000_steps_ms"] = page.evaluate(
                "() => window.townletDrawnAt - window.clickAt"
            )
            figures["load_2000_steps_outside_ms"] = (time.perf_counter() - started) * 1000
        finally:
            process.terminate()
        if week is not None:
            figures.update(measure_week(page, week))
        browser.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        village, long, week = Path(tmp) / "village", Path(tmp) / "long", Path(tmp) / "week"
        capture(load_config(["scenario=village", "capture.record=true"]), village)
        capture(load_config(LONG), long)
        capture(load_config(["scenario=village_week", "capture.record=true"]), week)
        figures = measure(args.chromium, village, long, week)
    load = os.getloadavg()[0]
    print(
        json.dumps(
            {
                "name": "viewer_village_fps",
                "value": round(figures["village_fps"], 1),
                "unit": "frames/s (median rAF interval)",
                "speed": 10,
                "agents": 16,
                "p90_frame_ms": round(figures["village_fps_p90_frame_ms"], 1),
                "load_1min": load,
            }
        )
    )
    print(
        json.dumps(
            {
                "name": "viewer_load_2000_steps",
                "value": round(figures["load_2000_steps_ms"]),
                "unit": "ms (click to first frame drawn, on the page's clock)",
                "agents": 4,
                "with_playwright_click_ms": round(figures["load_2000_steps_outside_ms"]),
            }
        )
    )
    for name, key, unit in (
        ("viewer_week_open", "week_open_ms", "ms (click to first frame drawn)"),
        ("viewer_week_seek_max", "week_seek_max_ms", "ms (seek to that step drawn, worst of 20)"),
        ("viewer_week_seek_median", "week_seek_median_ms", "ms (seek to that step drawn)"),
    ):
        print(
            json.dumps(
                {
                    "name": name,
                    "value": round(figures[key], 1),
                    "unit": unit,
                    "scenario": "village_week",
                    "agents": 16,
                    "steps": 1680,
                    "load_1min": load,
                }
            )
        )


if __name__ == "__main__":
    main()
