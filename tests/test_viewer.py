"""The viewer page in real headless Chromium (Debian's, driven by Python Playwright)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import play, recorder_for

from townlet.serve.spawn import spawn_viewer

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT_DIR = Path(os.environ.get("TOWNLET_SCREENSHOTS", ROOT / "outputs" / "screenshots"))
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    recorder = recorder_for(run, periodic=1)
    for episode in range(3):
        play(recorder, episode, reward=1.0 + episode, steps=40)
    recorder.close()
    started = time.perf_counter()
    process, address = serve_folder(run)
    yield {"url": address, "ready_s": time.perf_counter() - started}
    process.terminate()
    process.wait(timeout=10)


def test_list_load_play_scrub_and_see_grid_and_meters(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        page.goto(server["url"])
        page.wait_for_selector("#status:text('connected')")
        rows = page.locator("#recordings tbody tr")
        rows.first.wait_for()
        assert rows.count() == 3
        page.fill("#filters input[name=min_reward]", "2.5")
        page.click("#filters button[type=submit]")
        page.wait_for_function("document.querySelectorAll('#recordings tbody tr').length === 1")
        page.locator("#recordings tbody tr").first.click()
        page.wait_for_selector("#info:text('Episode 2')")
        page.click("#play")
        page.wait_for_function("parseInt(document.querySelector('#cursor').textContent) >= 8")
        page.click("#pause")
        # scrub: the timeline seeks the replay
        page.eval_on_selector(
            "#timeline", "el => { el.value = 30; el.dispatchEvent(new Event('input')); }"
        )
        page.wait_for_selector("#cursor:text('31 / 40')")
        agents = page.locator("#agent-list .agent")
        assert agents.count() == 2
        text = page.inner_text("#agent-list")
        for name in (
            "energy",
            "hygiene",
            "satiation",
            "money",
            "social",
            "INTERACT",
            "action probabilities",
            "· reward +",  # each agent's own step reward and value estimate
            "· value ",
        ):
            assert name in text
        # the canvas shows agent a in its colour at its cell
        colour = page.evaluate("""() => {
            const c = document.querySelector('#grid'), ctx = c.getContext('2d');
            const cell = Math.floor(c.width / 4);
            const d = ctx.getImageData(30 % 4 * cell + cell / 2, 0 * cell + cell / 2, 1, 1).data;
            return [d[0], d[1], d[2]];
        }""")
        assert colour == [230, 57, 70], colour  # #e63946, agent a at (30 % 4, 0)
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOT_DIR / "viewer.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        # a bad request shows the server's error on the page
        page.evaluate("() => { document.querySelector('#timeline').max = 999; }")
        page.eval_on_selector(
            "#timeline", "el => { el.value = 999; el.dispatchEvent(new Event('input')); }"
        )
        page.wait_for_selector("#error:text('Invalid seek step: 999 (0-39)')")
        browser.close()
    assert server["ready_s"] < 5


def serve_folder(run: Path):
    """Start `townlet serve` on a run folder's recordings: (the process, the page's URL)."""
    return spawn_viewer(run, "--step-delay", "0.05")


def pixel(page, x: float, y: float) -> list[int]:
    return page.evaluate(
        """([x, y]) => { const d = document.querySelector('#grid').getContext('2d')
            .getImageData(x, y, 1, 1).data; return [d[0], d[1], d[2]]; }""",
        [x, y],
    )


def test_chats_and_outages_are_drawn_and_listed(tmp_path):
    from playwright.sync_api import sync_playwright

    from townlet.capture import capture
    from townlet.scenarios import load_config

    for scenario in ("evening_chat", "utility_outage"):
        capture(load_config([f"scenario={scenario}", "capture.record=true"]), tmp_path / scenario)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        process, url = serve_folder(tmp_path / "evening_chat")
        try:
            page.goto(url)
            page.locator("#recordings tbody tr").first.click()
            page.wait_for_selector("#info:text('Episode 0')")
            page.eval_on_selector(
                "#timeline", "el => { el.value = 2; el.dispatchEvent(new Event('input')); }"
            )
            page.wait_for_selector("#events li[data-kind=chat]")
            log = page.inner_text("#events")
            assert "alice chatted with bob: success" in log, log
            assert "carol chatted with dave: failure" in log, log
            # the line between the friends is the success colour, the rivals' the failure one
            layout = {
                a["id"]: (a["x"], a["y"])
                for a in page.evaluate("() => window.townletLast.grid.agents")
            }
            grid = page.evaluate("() => window.townletLast.grid")
            cell = page.evaluate("() => document.querySelector('#grid').width") // grid["width"]

            def midpoint(a, b):
                (x0, y0), (x1, y1) = layout[a], layout[b]
                return ((x0 + x1) / 2 + 0.5) * cell, ((y0 + y1) / 2 + 0.5) * cell

            assert pixel(page, *midpoint("alice", "bob")) == [95, 211, 154]
            assert pixel(page, *midpoint("carol", "dave")) == [255, 93, 108]
        finally:
            process.terminate()
            process.wait(timeout=10)
        process, url = serve_folder(tmp_path / "utility_outage")
        try:
            page.goto(url)
            page.locator("#recordings tbody tr").first.click()
            page.wait_for_selector("#info:text('Episode 0')")
            page.eval_on_selector(
                "#timeline", "el => { el.value = 5; el.dispatchEvent(new Event('input')); }"
            )
            page.wait_for_selector("#outages:text('outage: water')")
            cell = page.evaluate("() => document.querySelector('#grid').width") // 7  # the street
            assert pixel(page, 6 * cell + cell - 6, cell - 6) == [138, 47, 58]
            page.eval_on_selector(
                "#timeline", "el => { el.value = 20; el.dispatchEvent(new Event('input')); }"
            )
            page.wait_for_selector("#cursor:text('21 / 30')")
            assert page.inner_text("#outages") == ""
            assert pixel(page, 6 * cell + cell - 6, cell - 6) != [138, 47, 58]
        finally:
            process.terminate()
            process.wait(timeout=10)
        browser.close()


def test_deep_links_keyboard_night_meters_and_a_canvas_of_the_grids_shape(tmp_path):
    from playwright.sync_api import sync_playwright

    from townlet.capture import capture
    from townlet.scenarios import load_config

    capture(load_config(["scenario=town", "capture.record=true"]), tmp_path / "town")
    process, address = serve_folder(tmp_path / "town")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            missing = []
            page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
            page.goto(address + "?episode=0&step=20&agent=bob")  # a link pasted in a report
            page.wait_for_selector("#cursor:text('21 / 240')")
            assert "step=20" in page.url and "agent=bob" in page.url and "episode=0" in page.url
            assert page.get_attribute(".agent.focused", "data-agent") == "bob"
            grid = page.evaluate("() => window.townletLast.grid")
            size = page.evaluate(
                "() => [document.querySelector('#grid').width, "
                "document.querySelector('#grid').height]"
            )
            assert size[0] * grid["height"] == size[1] * grid["width"], (size, grid)
            page.keyboard.press("ArrowRight")
            page.wait_for_selector("#cursor:text('22 / 240')")
            page.wait_for_function("location.search.includes('step=21')")
            page.keyboard.press("ArrowLeft")
            page.wait_for_selector("#cursor:text('21 / 240')")
            page.keyboard.press(" ")  # play
            page.wait_for_function("parseInt(document.querySelector('#cursor').textContent) > 23")
            page.keyboard.press(" ")  # pause
            page.keyboard.press("+")
            assert page.input_value("#speed") == "2"
            # night falls: the same empty floor tile is darker at 02:00 than at noon
            cell = size[0] // grid["width"]
            walls = {tuple(w) for w in grid["walls"]}
            busy = {(a["x"], a["y"]) for a in grid["affordances"]}
            x, y = next(
                (x, y)
                for y in range(grid["height"])
                for x in range(grid["width"])
                if (x, y) not in walls and (x, y) not in busy
            )

            def floor_at(step):
                page.eval_on_selector(
                    "#timeline",
                    f"el => {{ el.value = {step}; el.dispatchEvent(new Event('input')); }}",
                )
                page.wait_for_selector(f"#cursor:text('{step + 1} / 240')")
                return sum(pixel(page, x * cell + 2, y * cell + 2))

            assert floor_at(200) < floor_at(60) * 0.75  # 6:00 + 200 ticks = 02:00; 60 = 12:00
            colours = page.evaluate("() => [meterColour(0.02), meterColour(0.3), meterColour(0.9)]")
            assert colours == ["#e63946", "#e9c46a", "#78c8a0"]
            # timelines: the focused agent's series drawn, markers on the scrubber, a click seeks
            page.wait_for_function("window.townletSeriesReady === true")
            drawn = page.evaluate("""() => { const c = document.querySelector('#charts');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }""")
            assert drawn > 500, drawn
            marks = page.evaluate("""() => { const c = document.querySelector('#markers');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }""")
            assert marks > 0, "shift arrivals are marked on the scrubber"
            box = page.locator("#charts").bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_function(
                "Math.abs(parseInt(document.querySelector('#cursor').textContent) - 121) <= 2"
            )
            assert page.evaluate("() => document.documentElement.scrollHeight") <= 900, "no scroll"
            assert not missing, missing  # no favicon 404
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
