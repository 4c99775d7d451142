"""The viewer page in real headless Chromium (Debian's, driven by Python Playwright)."""

from __future__ import annotations

import contextlib
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
            drawn = ink(page, "#charts")
            assert drawn > 500, drawn
            marks = ink(page, "#markers")
            assert marks > 0, "shift arrivals are marked on the scrubber"
            legend = page.get_attribute("#markers", "title")
            assert "completions (" in legend and "Fridge #" in legend, legend  # colour per type
            box = page.locator("#charts").bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_function(
                "Math.abs(parseInt(document.querySelector('#cursor').textContent) - 121) <= 2"
            )
            assert page.evaluate("() => document.documentElement.scrollHeight") <= 900, "no scroll"
            shot(page, "viewer_town.png")
            page.set_viewport_size({"width": 1920, "height": 1080})  # the canvas refits
            page.wait_for_function(f"document.querySelector('#grid').width > {size[0]}")
            height, width = page.evaluate(
                "() => [document.documentElement.scrollHeight, "
                "document.documentElement.scrollWidth]"
            )
            assert height <= 1080 and width <= 1920, (height, width)
            assert not missing, missing  # no favicon 404
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def shot(page, name: str) -> None:
    """Save what the page shows (the manual's screenshots come from TOWNLET_SCREENSHOTS=
    docs/screenshots): a blank or failed page would be small, so the size is checked."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / name
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000, name


@contextlib.contextmanager
def viewer_on(run: Path):
    """The viewer serving a run's recordings, stopped on leaving."""
    process, url = serve_folder(run)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def open_episode(page, url: str) -> int:
    """Open episode 0 of the served run; its step count."""
    page.goto(url + "?episode=0")
    page.wait_for_selector("#info:text('Episode 0')")
    return page.evaluate("() => window.townletLast.replay_metadata.total_steps")


def open_page(p, width: int = 1500, height: int = 900):
    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
    return browser, browser.new_page(viewport={"width": width, "height": height})


def seek(page, step: int, total: int) -> None:
    page.eval_on_selector(
        "#timeline", f"el => {{ el.value = {step}; el.dispatchEvent(new Event('input')); }}"
    )
    page.wait_for_selector(f"#cursor:text('{step + 1} / {total}')")


def ink(page, canvas: str = "#charts") -> int:
    """How many pixels of a canvas are drawn on."""
    return page.evaluate(
        """(id) => { const c = document.querySelector(id);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }""",
        canvas,
    )


def test_compare_two_episodes_scrubbed_together_with_aligned_metrics(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser, page = open_page(p)
        page.goto(server["url"])
        rows = page.locator("#recordings tbody tr")
        rows.first.wait_for()
        page.locator("#recordings tbody tr[data-episode='2']").click()
        page.wait_for_selector("#info:text('Episode 2')")
        page.wait_for_function("window.townletSeriesReady === true")
        alone = ink(page)
        assert page.is_hidden("#pane-b") and page.is_hidden("#compare")
        page.locator("#recordings tbody tr[data-episode='0'] button.vs").click()
        page.wait_for_selector("#caption-b:text('B: episode 0')")
        seek(page, 30, 40)
        page.wait_for_function("window.townletCompareLast && window.townletCompareLast.step === 30")
        assert "compare=0" in page.url and "episode=2" in page.url
        page.wait_for_selector("#compare-metrics tr[data-metric='total reward']")
        cells = {
            row.get_attribute("data-metric"): row.inner_text().split("\t")[1:]
            for row in page.locator("#compare-metrics tbody tr").all()
        }
        assert cells["step"] == ["31", "31", "+0"], cells
        # each agent earns reward/40 a step: 3.0 x 31/40 against 1.0 x 31/40
        assert cells["reward so far"] == ["2.325", "0.775", "-1.550"], cells
        assert cells["total reward"] == ["3.000", "1.000", "-2.000"], cells
        # B is drawn in its own canvas: agent a at (30 % 4, 0), in its colour
        width = page.evaluate("() => document.querySelector('#grid-b').width")
        cell = width // 4
        colour = page.evaluate(
            """(c) => { const d = document.querySelector('#grid-b').getContext('2d')
            .getImageData(2 * c + c / 2, c / 2, 1, 1).data; return [d[0], d[1], d[2]]; }""",
            cell,
        )
        assert colour == [230, 57, 70], colour
        assert ink(page) > alone, "B's cumulative reward is drawn on A's chart"
        shot(page, "viewer_compare.png")
        # the link reopens both episodes at the same step
        page.goto(page.url)
        page.wait_for_selector("#cursor:text('31 / 40')")
        page.wait_for_function("window.townletCompareLast && window.townletCompareLast.step === 30")
        page.click("#compare-close")
        assert page.is_hidden("#pane-b")
        page.wait_for_function("!location.search.includes('compare=')")
        browser.close()


def test_focus_shows_shift_queue_and_rivals_and_hover_names_the_tile(tmp_path):
    from playwright.sync_api import sync_playwright

    from townlet.capture import capture
    from townlet.scenarios import load_config

    for scenario in ("evening_chat", "queue_conflict", "late_help"):
        capture(load_config([f"scenario={scenario}", "capture.record=true"]), tmp_path / scenario)
    with sync_playwright() as p:
        browser, page = open_page(p)
        process, url = serve_folder(tmp_path / "evening_chat")
        try:
            page.goto(url + "?episode=0&agent=carol")
            page.wait_for_selector("#info:text('Episode 0')")
            total = page.evaluate("() => window.townletLast.replay_metadata.total_steps")
            seek(page, total - 1, total)
            text = page.inner_text(".agent[data-agent=carol] .situation")
            assert "rival: dave" in text, text
            assert "closest: alice" in page.inner_text(".agent[data-agent=bob] .situation")
            # the rivalry line: some point between carol and dave has the rival colour
            where = {a["id"]: a for a in page.evaluate("() => window.townletLast.grid.agents")}
            cell = page.evaluate("() => document.querySelector('#grid').width") // page.evaluate(
                "() => window.townletLast.grid.width"
            )
            (x0, y0), (x1, y1) = [(where[k]["x"], where[k]["y"]) for k in ("carol", "dave")]
            samples = [
                pixel(page, (x0 + (x1 - x0) * f + 0.5) * cell, (y0 + (y1 - y0) * f + 0.5) * cell)
                for f in (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65)
            ]
            assert [255, 159, 67] in samples, samples
            # hovering a tile names what is on it, in full
            box = page.locator("#grid").bounding_box()
            alice = where["alice"]
            page.mouse.move(
                box["x"] + (alice["x"] + 0.5) * cell, box["y"] + (alice["y"] + 0.5) * cell
            )
            page.wait_for_selector("#tip:not([hidden])")
            shot(page, "viewer_focus.png")
            assert page.inner_text("#tip").startswith("alice: ") or "alice: " in page.inner_text(
                "#tip"
            )
        finally:
            process.terminate()
            process.wait(timeout=10)
        with viewer_on(tmp_path / "queue_conflict") as url:
            total = open_episode(page, url)
            found = None
            for step in range(total):
                seek(page, step, total)
                text = page.inner_text("#agent-list")
                if "queue: 2 of 2 at shower" in text:
                    found = step
                    break
            assert found is not None, "the second in line is named"
            assert "queue: 1 of 2 at shower" in page.inner_text("#agent-list")
        with viewer_on(tmp_path / "late_help") as url:
            total = open_episode(page, url)
            states = set()
            for step in range(0, total, 2):
                seek(page, step, total)
                states |= {
                    a.get("shift") for a in page.evaluate("() => window.townletLast.grid.agents")
                }
                if ": at work (late)" in page.inner_text("#agent-list"):
                    break
            assert "at work (late)" in states and "at work (on time)" in states, states
        browser.close()


def test_a_version_one_recording_hides_what_it_lacks():
    from playwright.sync_api import sync_playwright

    fixtures = ROOT / "tests" / "fixtures" / "hamlet-v1"
    process, url = spawn_viewer(fixtures, "--step-delay", "0.05", db="metrics.db")
    try:
        with sync_playwright() as p:
            browser, page = open_page(p)
            page.goto(url)
            page.locator("#recordings tbody tr").first.click()
            page.wait_for_selector("#info:text('Episode')")
            page.wait_for_function("window.townletLast !== undefined")
            assert page.is_hidden("#tod-row"), "no clock recorded: no time of day, not 00:00"
            assert page.is_hidden("#events-title") and page.is_hidden("#events")
            text = page.inner_text("#agent-list")
            assert "progress" not in text and "shift:" not in text, text
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_village_plays_smoothly_and_a_long_episode_opens_fast(tmp_path):
    """The scale targets, measured in the page (requestAnimationFrame intervals; the page's own
    clock from click to first frame) by the same code as benchmarks/viewer.py. The targets are
    60 frames/s and 200 ms (measured there on a quiet machine: 59.9 and 140 ms; here at load 1-3
    the median interval was 16.7 ms, once 33.3 ms: a frame that misses one vsync waits for the
    next, so a busy machine shows 30, never 45). The bounds leave room for that on a loaded
    2-core CI machine and still catch a page that draws too much for every other vsync."""
    import importlib.util

    from townlet.capture import capture
    from townlet.scenarios import load_config

    spec = importlib.util.spec_from_file_location("viewer_bench", ROOT / "benchmarks" / "viewer.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    capture(load_config(["scenario=village", "capture.record=true"]), tmp_path / "village")
    capture(load_config(bench.LONG), tmp_path / "long")
    capture(load_config(["scenario=village_week", "capture.record=true"]), tmp_path / "week")
    figures = bench.measure(CHROMIUM, tmp_path / "village", tmp_path / "long", tmp_path / "week")
    print(
        f"village {figures['village_fps']:.1f} frames/s, 2,000 steps open in "
        f"{figures['load_2000_steps_ms']:.0f} ms, a week of the village in "
        f"{figures['week_open_ms']:.0f} ms (worst seek {figures['week_seek_max_ms']:.0f} ms)"
    )
    assert figures["village_fps"] >= 28, figures
    assert figures["load_2000_steps_ms"] <= 300, figures
    # the benchmark's targets are 200 ms for both; a loaded 2-core CI machine gets room
    assert figures["week_open_ms"] <= 600 and figures["week_seek_max_ms"] <= 300, figures


def test_a_replay_beside_the_live_policy(trained_run):
    """Compare's other half: B is the run's policy playing live at its own pace."""
    from playwright.sync_api import sync_playwright

    checkpoint = trained_run / "checkpoints" / "latest.pt"
    process, url = spawn_viewer(
        trained_run, "--checkpoint", str(checkpoint), "--step-delay", "0.02"
    )
    try:
        with sync_playwright() as p:
            browser, page = open_page(p)
            page.goto(url + "?episode=0")
            page.wait_for_selector("#info:text('Episode 0')")
            page.click("#live-b")
            page.wait_for_selector("#caption-b:text('B: live policy · episode')")
            page.wait_for_function(
                "window.townletCompareLast && window.townletCompareLast.mode === 'live' "
                "&& window.townletCompareLast.step >= 3"
            )
            assert (
                page.is_visible("#pane-b")
                and page.evaluate("() => window.townletLast.mode") == "replay"
            )
            assert ink(page, "#grid-b") > 1000, "B's town is drawn"
            metrics = page.locator("#compare-metrics tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.metric)"
            )
            assert "reward so far" in metrics and "episode steps" not in metrics, metrics
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
